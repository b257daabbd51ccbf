//! The records layer on both of its backends: rusqlite (the embedded default) and sqlx (the
//! path PostgreSQL takes), run through the same statements on a real SQLite file.

use sluice_host::records::heartbeat::{RunHost, HEARTBEAT_STALE_AFTER};
use sluice_host::records::{
    now_micros, AfterAttempt, AttemptEnd, CacheEntry, NewRun, Records, RunFilter, StartRecord,
};

async fn exercise(url: &str) {
    let records = Records::connect(url).await.unwrap();
    // Connecting again finds the schema already migrated.
    let records_again = Records::connect(url).await.unwrap();
    records
        .register_component("d1", "x.wasm", "env", 10, &[])
        .await
        .unwrap();
    records_again
        .register_component("d1", "x.wasm", "env", 10, &[])
        .await
        .unwrap();
    for (i, project) in ["alpha", "beta", "alpha"].iter().enumerate() {
        let run = NewRun {
            parent_id: None,
            run_id: format!("r{i}"),
            project: project.to_string(),
            domain: "dev".into(),
            component_digest: "d1".into(),
            task: "t".into(),
            action_id: "a0".into(),
            started_at: 1000 + i as i64,
            inputs_uri: format!("memory:///{i}/inputs.msgpack"),
            raw_data_path: None,
            cache_key: None,
            cache_status: "disabled".into(),
        };
        records.create_action(&run, &[]).await.unwrap();
        let outcome = if i == 1 {
            Err(("user".to_string(), "bad".to_string()))
        } else {
            Ok(format!("memory:///{i}/outputs.msgpack"))
        };
        records
            .finish_attempt(
                &AttemptEnd {
                    run_id: run.run_id.clone(),
                    action_id: "a0".into(),
                    attempt: 1,
                    ended_at: 2000,
                    outcome,
                    log_uri: None,
                    instantiate_us: Some(5),
                    call_us: Some(7),
                    ends_run: true,
                },
                &AfterAttempt::Final { cache: None },
            )
            .await
            .unwrap();
    }
    let all = records
        .list_runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r2", "r1", "r0"], "{url}: newest first");
    let alpha = records
        .list_runs(&RunFilter {
            project: Some("alpha".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alpha.len(), 2, "{url}");
    let (run, actions, attempts) = records.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (run.phase.as_str(), run.error_kind.as_deref()),
        ("failed", Some("user"))
    );
    assert_eq!(actions[0].outputs_uri, None);
    assert_eq!(
        (attempts[0].instantiate_us, attempts[0].call_us),
        (Some(5), Some(7))
    );
    let (_, actions, _) = records.run("r0").await.unwrap().unwrap();
    assert_eq!(
        actions[0].outputs_uri.as_deref(),
        Some("memory:///0/outputs.msgpack")
    );
    assert!(records.run("nope").await.unwrap().is_none());
    // A run id used twice is refused and leaves the first record as it was.
    let dup = NewRun {
        parent_id: None,
        run_id: "r0".into(),
        project: "alpha".into(),
        domain: "dev".into(),
        component_digest: "d1".into(),
        task: "t".into(),
        action_id: "a0".into(),
        started_at: 5,
        inputs_uri: "memory:///x".into(),
        raw_data_path: None,
        cache_key: None,
        cache_status: "disabled".into(),
    };
    assert!(records.create_action(&dup, &[]).await.is_err(), "{url}");
    let (run, _, _) = records.run("r0").await.unwrap().unwrap();
    assert_eq!(run.phase, "succeeded", "{url}");
    // Each run names the process that made it; this one is alive.
    assert!(records.process().is_some(), "this machine has /proc");
    assert_eq!(run.host.as_deref(), records.process(), "{url}");
    assert!(!run.host_gone, "{url}");

    // A claim (resume) takes a running run only from the process the caller saw.
    let running = NewRun {
        run_id: "r9".into(),
        ..dup
    };
    records.create_action(&running, &[]).await.unwrap();
    let (run, _, _) = records.run("r9").await.unwrap().unwrap();
    assert_eq!((run.phase.as_str(), run.host_gone), ("running", false));
    let elsewhere = Some("another-host:boot:1:1");
    assert!(!records.claim_run("r9", elsewhere).await.unwrap(), "{url}");
    assert!(
        records.claim_run("r9", records.process()).await.unwrap(),
        "{url}"
    );
    // A run that ended is not claimed.
    assert!(
        !records.claim_run("r0", records.process()).await.unwrap(),
        "{url}"
    );
}

#[tokio::test]
async fn rusqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!("sqlite://{}/a.db", dir.path().display())).await;
}

#[tokio::test]
async fn sqlx_backend_runs_the_same_statements() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!(
        "sqlx+sqlite://{}/b.db?mode=rwc",
        dir.path().display()
    ))
    .await;
}

/// The root action of run `id` of component `d1`, uncached, started at `started_at`.
fn root_run(id: &str, started_at: i64) -> NewRun {
    NewRun {
        parent_id: None,
        run_id: id.into(),
        project: "alpha".into(),
        domain: "dev".into(),
        component_digest: "d1".into(),
        task: "t".into(),
        action_id: "a0".into(),
        started_at,
        inputs_uri: format!("memory:///{id}/inputs.msgpack"),
        raw_data_path: None,
        cache_key: None,
        cache_status: "disabled".into(),
    }
}

/// The suite's database (its URL and records) in `home`, with component `d1` registered.
async fn records_of_component_d1(home: &std::path::Path) -> (String, Records) {
    let url = sluice_tests::test_database_url(home).await;
    let records = Records::connect(&url).await.unwrap();
    records
        .register_component("d1", "x.wasm", "env", 10, &[])
        .await
        .unwrap();
    (url, records)
}

/// The steps of a run its host lost and a caller ran again (resume, a re-called child), on the
/// suite's database (SQLite here, PostgreSQL in the second pass, where each step's statements
/// go to the server as one: an update of the action with an attempt that refers to it).
#[tokio::test]
async fn a_lost_attempt_and_a_reopened_action_are_recorded_in_order() {
    let home = tempfile::tempdir().unwrap();
    let (url, records) = records_of_component_d1(home.path()).await;
    let run = root_run("r1", 1000);
    records
        .create_action(&run, &[("cache-miss", Some("why".into()))])
        .await
        .unwrap();
    records.mark_attempt_lost("r1", "a0", 1).await.unwrap();
    records
        .reopen_action("r1", "a0", 2, &run.inputs_uri, "called again".into())
        .await
        .unwrap();
    records
        .finish_attempt(
            &AttemptEnd {
                run_id: "r1".into(),
                action_id: "a0".into(),
                attempt: 2,
                ended_at: 2000,
                outcome: Ok("memory:///r1/outputs.msgpack".into()),
                log_uri: None,
                instantiate_us: None,
                call_us: None,
                ends_run: true,
            },
            &AfterAttempt::Final { cache: None },
        )
        .await
        .unwrap();
    let (run_record, actions, attempts) = records.run("r1").await.unwrap().unwrap();
    assert_eq!(run_record.phase, "succeeded", "{url}");
    assert_eq!(actions[0].phase, "succeeded", "{url}");
    let phases: Vec<(i64, &str)> = attempts
        .iter()
        .map(|a| (a.attempt, a.phase.as_str()))
        .collect();
    assert_eq!(phases, [(1, "lost"), (2, "succeeded")], "{url}");
    let kinds: Vec<String> = records
        .events("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "cache-miss",
            "started",
            "attempt-lost",
            "resumed",
            "started",
            "succeeded"
        ],
        "{url}"
    );
    // An attempt for an action that does not exist is refused whole: no event of it stays.
    assert!(records
        .reopen_action("r1", "nope", 1, "memory:///x", "again".into())
        .await
        .is_err());
    assert_eq!(
        records.events("r1").await.unwrap().len(),
        kinds.len(),
        "{url}"
    );
}

/// A run whose host is on another machine (a shared database) is judged by its heartbeat:
/// running while its host reports, stopped once silent for `HEARTBEAT_STALE_AFTER`, and then
/// claimed by a resume here, after which the silent host's beats no longer touch it.
#[tokio::test]
async fn a_run_on_another_machine_is_stopped_once_its_host_falls_silent() {
    let home = tempfile::tempdir().unwrap();
    let url = sluice_tests::test_database_url(home.path()).await;
    let here = Records::connect(&url).await.unwrap();
    here.register_component("d1", "x.wasm", "env", 10, &[])
        .await
        .unwrap();
    let elsewhere = "machine-b:boot-b:7:7";
    let there = here.clone().as_process(elsewhere);
    let now = now_micros();
    let run = root_run("r1", now);
    there.create_action(&run, &[]).await.unwrap();
    let (seen, _, _) = here.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (seen.host.as_deref(), seen.heartbeat_at),
        (Some(elsewhere), Some(now)),
        "{url}"
    );
    assert!(
        matches!(seen.host_now(), RunHost::Reporting { seconds_ago: 0 }),
        "{url}: {:?}",
        seen.host_now()
    );
    assert!(!seen.host_gone, "{url}");

    // Its host beats while the run is live there, and stops when the run's guard drops.
    let live = there.live_run("r1");
    there.heartbeat(now + 1).await.unwrap();
    drop(live);
    there.heartbeat(now + 2).await.unwrap();
    let (seen, _, _) = here.run("r1").await.unwrap().unwrap();
    assert_eq!(seen.heartbeat_at, Some(now + 1), "{url}");

    // Silent for longer than the stale time: stopped.
    let stale = HEARTBEAT_STALE_AFTER.as_micros() as i64;
    there
        .heartbeat_runs(&["r1".to_string()], now - stale - 1_000_000)
        .await
        .unwrap();
    let (seen, _, _) = here.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (seen.host_now(), seen.host_gone),
        (RunHost::Gone, true),
        "{url}"
    );
    // Another process's beat does not touch a run it does not hold.
    here.heartbeat_runs(&["r1".to_string()], now).await.unwrap();
    let (seen, _, _) = here.run("r1").await.unwrap().unwrap();
    assert!(seen.host_gone, "{url}");

    // Claimed here: this process holds it, with a fresh heartbeat, and the silent host's
    // late beats are ignored.
    assert!(
        here.claim_run("r1", Some(elsewhere)).await.unwrap(),
        "{url}"
    );
    there
        .heartbeat_runs(&["r1".to_string()], now - stale * 10)
        .await
        .unwrap();
    let (seen, _, _) = here.run("r1").await.unwrap().unwrap();
    assert_eq!(seen.host.as_deref(), here.process(), "{url}");
    assert!(seen.heartbeat_at.is_some_and(|t| t >= now), "{url}");
    assert_eq!(
        (seen.host_now(), seen.host_gone),
        (RunHost::Alive, false),
        "{url}"
    );
}

#[tokio::test]
async fn unknown_database_urls_are_refused_by_name() {
    let err = Records::connect("mysql://x").await.err().unwrap();
    assert!(
        err.to_string()
            .starts_with("database mysql://x: expected sqlite://"),
        "{err}"
    );
}

/// The database the suite runs on: a SQLite file, or PostgreSQL when `scripts/test.sh` runs the
/// suite a second time against its server.
#[tokio::test]
async fn the_configured_test_database() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&sluice_tests::test_database_url(dir.path()).await).await;
}

/// The end of a root action's first attempt on `run`, at `ended_at`, with `outcome`.
fn first_attempt_end(
    run: &str,
    ended_at: i64,
    outcome: Result<String, (String, String)>,
) -> AttemptEnd {
    AttemptEnd {
        run_id: run.into(),
        action_id: "a0".into(),
        attempt: 1,
        ended_at,
        outcome,
        log_uri: Some(format!("memory:///{run}/log.txt")),
        instantiate_us: Some(3),
        call_us: Some(4),
        ends_run: true,
    }
}

/// The kinds of run `id`'s events, oldest first.
async fn event_kinds(records: &Records, id: &str) -> Vec<String> {
    let events = records.events(id).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// A start held back (an attempt that ended before it waited for anything) is written with
/// the end as rows born finished, or with a retry's end in one transaction, or on its own
/// once asked for; whichever way, the records read as if it had been written first, on the
/// suite's database (SQLite here, PostgreSQL in the second pass).
#[tokio::test]
async fn a_held_start_is_recorded_with_its_end_or_on_its_own() {
    let home = tempfile::tempdir().unwrap();
    let (url, records) = records_of_component_d1(home.path()).await;

    // Succeeded, with a cache entry: the run, action and attempt are born succeeded.
    let mut cached = root_run("r1", 1000);
    cached.cache_key = Some("k1".into());
    cached.cache_status = "miss".into();
    let held = StartRecord::held(cached, &[("cache-miss", Some("no entry".into()))]);
    let entry = CacheEntry {
        cache_key: "k1".into(),
        scope: "global".into(),
        task: "env.t".into(),
        component_digest: "d1".into(),
        outputs_uri: "memory:///r1/outputs.msgpack".into(),
        run_id: "r1".into(),
        action_id: "a0".into(),
        created_at: 2000,
        inputs_uri: None,
        inputs_sha256: None,
    };
    let end = first_attempt_end("r1", 2000, Ok(entry.outputs_uri.clone()));
    let after = AfterAttempt::Final {
        cache: Some(Box::new(entry)),
    };
    let start = held.take().await.expect("still held");
    assert!(held.take().await.is_none(), "taken once");
    records
        .finish_held_attempt(start, &end, &after)
        .await
        .unwrap();
    let (run, actions, attempts) = records.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (run.phase.as_str(), run.created_at, run.ended_at),
        ("succeeded", 1000, Some(2000)),
        "{url}"
    );
    assert_eq!(run.host.as_deref(), records.process(), "{url}");
    assert_eq!(
        (actions[0].phase.as_str(), actions[0].outputs_uri.as_deref()),
        ("succeeded", Some("memory:///r1/outputs.msgpack")),
        "{url}"
    );
    assert_eq!(
        actions[0].inputs_uri.as_deref(),
        Some("memory:///r1/inputs.msgpack")
    );
    let a = &attempts[0];
    assert_eq!(
        (a.attempt, a.phase.as_str(), a.started_at, a.ended_at),
        (1, "succeeded", 1000, Some(2000)),
        "{url}"
    );
    assert_eq!(
        (a.log_uri.as_deref(), a.instantiate_us, a.call_us),
        (Some("memory:///r1/log.txt"), Some(3), Some(4)),
        "{url}"
    );
    assert_eq!(
        event_kinds(&records, "r1").await,
        [
            "created",
            "cache-miss",
            "started",
            "cache-written",
            "succeeded"
        ],
        "{url}"
    );
    let found = records.cache_lookup("k1", "global").await.unwrap();
    assert_eq!(found.map(|e| e.run_id).as_deref(), Some("r1"), "{url}");

    // Failed: the error is on the run, the action and the attempt.
    let held = StartRecord::held(root_run("r2", 1000), &[]);
    let error = Err(("user".to_string(), "bad input row 3".to_string()));
    let end = first_attempt_end("r2", 2000, error);
    let final_end = AfterAttempt::Final { cache: None };
    let start = held.take().await.unwrap();
    records
        .finish_held_attempt(start, &end, &final_end)
        .await
        .unwrap();
    let (run, actions, attempts) = records.run("r2").await.unwrap().unwrap();
    for (phase, kind, text) in [
        (&run.phase, &run.error_kind, &run.error_text),
        (
            &actions[0].phase,
            &actions[0].error_kind,
            &actions[0].error_text,
        ),
        (
            &attempts[0].phase,
            &attempts[0].error_kind,
            &attempts[0].error_text,
        ),
    ] {
        assert_eq!(
            (phase.as_str(), kind.as_deref(), text.as_deref()),
            ("failed", Some("user"), Some("bad input row 3")),
            "{url}"
        );
    }
    assert_eq!(actions[0].outputs_uri, None, "{url}");
    assert_eq!(
        event_kinds(&records, "r2").await,
        ["created", "started", "failed"]
    );

    // A retry follows: the start and the failed attempt in one transaction, then attempt 2
    // the plain way.
    let held = StartRecord::held(root_run("r3", 1000), &[]);
    let failed = Err(("trap".to_string(), "unreachable".to_string()));
    let retry = AfterAttempt::Retry {
        next_attempt: 2,
        delay_ms: 10,
    };
    let start = held.take().await.unwrap();
    records
        .finish_held_attempt(start, &first_attempt_end("r3", 1500, failed), &retry)
        .await
        .unwrap();
    let (run, actions, attempts) = records.run("r3").await.unwrap().unwrap();
    assert_eq!(
        (run.phase.as_str(), actions[0].phase.as_str()),
        ("running", "running")
    );
    assert_eq!(
        (
            attempts[0].phase.as_str(),
            attempts[0].error_kind.as_deref()
        ),
        ("failed", Some("trap")),
        "{url}"
    );
    records
        .start_attempt("r3", "a0", 2, "memory:///r3/inputs.msgpack")
        .await
        .unwrap();
    let mut second = first_attempt_end("r3", 3000, Ok("memory:///r3/outputs.msgpack".into()));
    second.attempt = 2;
    records.finish_attempt(&second, &final_end).await.unwrap();
    let (run, _, attempts) = records.run("r3").await.unwrap().unwrap();
    let phases: Vec<&str> = attempts.iter().map(|a| a.phase.as_str()).collect();
    assert_eq!(
        (run.phase.as_str(), phases),
        ("succeeded", vec!["failed", "succeeded"])
    );
    assert_eq!(
        event_kinds(&records, "r3").await,
        [
            "created",
            "started",
            "retry-scheduled",
            "started",
            "succeeded"
        ],
        "{url}"
    );

    // Asked for (the attempt waited, or wrote a row of its own): written running, once,
    // however often it is asked for; nothing is left for the end to write with it.
    let held = StartRecord::held(root_run("r4", 1000), &[]);
    assert!(
        records.run("r4").await.unwrap().is_none(),
        "{url}: held, not written"
    );
    held.write(&records).await.unwrap();
    held.write(&records).await.unwrap();
    assert!(held.take().await.is_none(), "{url}");
    let (run, actions, attempts) = records.run("r4").await.unwrap().unwrap();
    assert_eq!(
        (
            run.phase.as_str(),
            actions[0].phase.as_str(),
            attempts[0].phase.as_str()
        ),
        ("running", "running", "running"),
        "{url}"
    );
    assert_eq!(event_kinds(&records, "r4").await, ["created", "started"]);
    // A start that is already written (a child, a resumed run) has nothing to write or take.
    let written = StartRecord::written();
    written.write(&records).await.unwrap();
    assert!(written.take().await.is_none());
}
