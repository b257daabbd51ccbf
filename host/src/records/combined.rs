//! A transaction sent to PostgreSQL as one statement.
//!
//! Through sqlx every statement is a round trip to the server, and a transaction adds two more
//! (BEGIN, COMMIT): a run's two transactions were 13 round trips. PostgreSQL runs the
//! statements of a transaction together as one statement when each becomes a data-modifying
//! `WITH` clause:
//!
//! `WITH s0 AS (INSERT ... RETURNING 1), s1 AS (UPDATE ... RETURNING 1)
//!  SELECT (SELECT count(*) FROM s0), (SELECT count(*) FROM s1)`
//!
//! One statement is one transaction, and the counts are the rows each statement changed, as
//! the statement-by-statement path reports them. The clauses run on one snapshot and do not see
//! one another's changes, and a row may be changed only once per statement, so only
//! transactions where that cannot matter are combined (see [`combinable`]): no `DELETE` (a
//! later insert may count on its effect), and a table that an `UPDATE` or an upsert changes is
//! changed by no other statement of the transaction. Plain inserts into one table (a step's
//! events) combine freely. Foreign keys are checked at the end of the statement, when every
//! clause's rows are in place.

use std::collections::HashMap;

use super::backend::SqlValue;
use super::events::Statement;

/// How a statement changes its table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// `INSERT` without `ON CONFLICT ... DO UPDATE`: only new rows.
    Insert,
    /// `UPDATE`, or an upsert: may change a row another clause also changes.
    Update,
    Delete,
}

/// The change a statement makes and its table, read from the SQL's first words; none for
/// anything else (a query, a statement this module does not know).
fn change_of(sql: &str) -> Option<(Change, &str)> {
    let mut words = sql.split_whitespace();
    let (change, table) = match words.next()?.to_ascii_uppercase().as_str() {
        "INSERT" => (Change::Insert, words.nth(1)?),
        "UPDATE" => (Change::Update, words.next()?),
        "DELETE" => (Change::Delete, words.nth(1)?),
        _ => return None,
    };
    let upsert = change == Change::Insert && sql.to_ascii_uppercase().contains("DO UPDATE");
    let table = table.split('(').next().unwrap_or(table);
    Some((if upsert { Change::Update } else { change }, table))
}

/// Whether `statements` can run as one statement with the same effect (see the module's
/// comment). A single statement needs no combining.
pub(crate) fn combinable(statements: &[Statement]) -> bool {
    if statements.len() < 2 {
        return false;
    }
    // Per table: statements that change it, and whether all of them are plain inserts.
    let mut tables: HashMap<&str, (usize, bool)> = HashMap::new();
    for (sql, _) in statements {
        match change_of(sql) {
            Some((Change::Delete, _)) | None => return false,
            Some((change, table)) => {
                let entry = tables.entry(table).or_insert((0, true));
                entry.0 += 1;
                entry.1 &= change == Change::Insert;
            }
        }
    }
    tables
        .values()
        .all(|&(count, inserts_only)| inserts_only || count == 1)
}

/// The one statement and its parameters: each statement's `$n` placeholders are numbered on
/// after the previous statement's.
pub(crate) fn combine(statements: &[Statement]) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("WITH ");
    let mut params = Vec::with_capacity(statements.iter().map(|(_, p)| p.len()).sum());
    for (i, (statement, statement_params)) in statements.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("s{i} AS ("));
        renumber(statement, params.len(), &mut sql);
        sql.push_str(" RETURNING 1)");
        params.extend(statement_params.iter().cloned());
    }
    let counts: Vec<String> = (0..statements.len())
        .map(|i| format!("(SELECT count(*) FROM s{i})"))
        .collect();
    sql.push_str(" SELECT ");
    sql.push_str(&counts.join(", "));
    (sql, params)
}

/// Appends `sql` to `out` with every `$n` made `$(n + offset)`. (The records layer's
/// statements hold no string literals, so every `$` is a placeholder.)
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &'static str, params: usize) -> Statement {
        (sql, (0..params as i64).map(SqlValue::Int).collect())
    }

    #[test]
    fn placeholders_are_numbered_on_and_counts_selected() {
        let (sql, params) = combine(&[
            statement("INSERT INTO runs (id, phase) VALUES ($1, $2)", 2),
            statement(
                "UPDATE actions SET phase = $1 WHERE run_id = $2 AND id = $3",
                3,
            ),
            statement("INSERT INTO events (id) VALUES ($1), ($2)", 2),
        ]);
        assert_eq!(
            sql,
            "WITH s0 AS (INSERT INTO runs (id, phase) VALUES ($1, $2) RETURNING 1), \
             s1 AS (UPDATE actions SET phase = $3 WHERE run_id = $4 AND id = $5 RETURNING 1), \
             s2 AS (INSERT INTO events (id) VALUES ($6), ($7) RETURNING 1) \
             SELECT (SELECT count(*) FROM s0), (SELECT count(*) FROM s1), \
             (SELECT count(*) FROM s2)"
        );
        assert_eq!(params.len(), 7);
    }

    #[test]
    fn only_transactions_whose_clauses_cannot_meet_are_combined() {
        let insert_run = statement("INSERT INTO runs (id) VALUES ($1)", 1);
        let event = statement("INSERT INTO events (id) VALUES ($1)", 1);
        let update_action = statement("UPDATE actions SET phase = $1 WHERE id = $2", 2);
        let upsert_entry = statement(
            "INSERT INTO cache_entries (k) VALUES ($1) ON CONFLICT (k) DO UPDATE SET k = excluded.k",
            1,
        );
        // A run's steps: inserts and updates of different tables, several events.
        assert!(combinable(&[
            insert_run.clone(),
            update_action.clone(),
            event.clone(),
            event.clone(),
            upsert_entry.clone(),
        ]));
        // One statement needs no combining.
        assert!(!combinable(std::slice::from_ref(&insert_run)));
        // A delete: a later insert may count on it.
        let delete = statement("DELETE FROM cache_reservations WHERE k = $1", 1);
        assert!(!combinable(&[delete, insert_run.clone()]));
        // Two changes of one table where one may update a row the other changes.
        assert!(!combinable(&[update_action.clone(), update_action.clone()]));
        assert!(!combinable(&[upsert_entry.clone(), upsert_entry]));
        let insert_action = statement("INSERT INTO actions (id) VALUES ($1)", 1);
        assert!(!combinable(&[insert_action, update_action]));
        // Anything not known is left as it is.
        assert!(!combinable(&[statement("SELECT 1", 0), event]));
    }

    #[test]
    fn a_dollar_without_digits_is_kept() {
        let mut out = String::new();
        renumber("a $ b $10", 5, &mut out);
        assert_eq!(out, "a $ b $15");
    }
}
