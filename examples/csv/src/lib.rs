//! The seed's CSV pipeline: shuffle the rows of a CSV file, then drop a column. The same three
//! tasks are written in Python (examples/python/py_csv.py) and JavaScript
//! (examples/js/js_csv.js); for the same input, seed and column all three write the same bytes.

use std::io::{Read, Write};

use sluice::{Csv, File};

/// Splits a CSV text into its header and rows (plain commas: no quoted fields).
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let split = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    let header = lines.next().map(split).unwrap_or_default();
    (header, lines.map(split).collect())
}

fn write_csv(name: &str, header: &[String], rows: &[Vec<String>]) -> sluice::Result<File<Csv>> {
    let mut out = File::<Csv>::create(name)?;
    writeln!(out, "{}", header.join(","))?;
    for row in rows {
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(out.finish()?)
}

/// Shuffles the rows of a CSV file (the header stays first), the same way for the same seed.
#[sluice::task]
fn shuffle_rows(data: File<Csv>, seed: i64) -> sluice::Result<File<Csv>> {
    let mut text = String::new();
    data.open()?.read_to_string(&mut text)?;
    let (header, mut rows) = parse_csv(&text);
    // Fisher-Yates driven by a 64-bit LCG, so every language gets the same order.
    let mut state = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for i in (1..rows.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        rows.swap(i, j);
    }
    write_csv("shuffled.csv", &header, &rows)
}

/// Drops one column of a CSV file.
#[sluice::task]
fn drop_column(data: File<Csv>, column: String) -> sluice::Result<File<Csv>> {
    let mut text = String::new();
    data.open()?.read_to_string(&mut text)?;
    let (header, rows) = parse_csv(&text);
    let Some(index) = header.iter().position(|c| *c == column) else {
        return Err(sluice::Error::user(format!(
            "column {column:?} not in the data (columns: {})",
            header.join(", ")
        )));
    };
    let keep = |row: &Vec<String>| -> Vec<String> {
        let mut row = row.clone();
        if index < row.len() {
            row.remove(index);
        }
        row
    };
    let rows: Vec<Vec<String>> = rows.iter().map(keep).collect();
    write_csv("dropped.csv", &keep(&header), &rows)
}

/// Shuffles, then drops a column: two child actions.
#[sluice::task]
fn pipeline(data: File<Csv>, seed: i64, column: String) -> sluice::Result<File<Csv>> {
    let shuffled = shuffle_rows::call(data, seed)?;
    Ok(drop_column::call(shuffled, column)?)
}

sluice::export_environment!(shuffle_rows, drop_column, pipeline);
