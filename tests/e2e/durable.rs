//! Caching, retries and traces, through the host, asserted on the records and the event log.

use std::time::Duration;

use sluice_host::records::{AttemptRecord, EventRecord, RunFilter};
use sluice_host::values::reference::RefMeta;
use sluice_host::values::RefKind;
use sluice_host::{RunDetails, RunOutcome, RunRequest, Value};
use sluice_tests::{attempt_log, fixture, reference_of, single_output, test_host, TestHost};

async fn run(t: &TestHost, req: RunRequest) -> RunOutcome {
    let env = t.host.load_file(fixture("durable")).await.unwrap();
    t.host.run(&env, req).await.unwrap()
}

fn add(x: i64, y: i64, note: &str) -> RunRequest {
    RunRequest::new("cached_add")
        .input("x", x)
        .input("y", y)
        .input("note", note)
}

async fn details(t: &TestHost, run_id: &str) -> RunDetails {
    t.host.run_details(run_id).await.unwrap().unwrap()
}

fn kinds(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn cache_status(d: &RunDetails) -> &str {
    d.actions[0].cache_status.as_deref().unwrap_or("")
}

fn phases(attempts: &[AttemptRecord]) -> Vec<&str> {
    attempts.iter().map(|a| a.phase.as_str()).collect()
}

#[tokio::test]
async fn a_cached_task_runs_once_per_key_and_ignored_inputs_do_not_count() {
    let t = test_host().await;
    let first = run(&t, add(1, 2, "first")).await;
    assert_eq!(single_output(&first), &Value::Int(3));
    let d = details(&t, &first.run_id).await;
    assert_eq!(cache_status(&d), "miss");
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(
        kinds(&d.events),
        [
            "created",
            "cache-miss",
            "started",
            "cache-written",
            "succeeded"
        ]
    );

    // Only the ignored `note` differs: answered from the cache, no attempt runs.
    let second = run(&t, add(1, 2, "second")).await;
    assert_eq!(single_output(&second), &Value::Int(3));
    let d2 = details(&t, &second.run_id).await;
    assert_eq!(cache_status(&d2), "hit");
    assert!(d2.attempts.is_empty());
    assert_eq!(kinds(&d2.events), ["created", "cache-hit", "succeeded"]);
    assert!(
        d2.events[1]
            .detail
            .as_deref()
            .unwrap()
            .contains(&first.run_id),
        "{:?}",
        d2.events
    );
    assert_eq!(d2.actions[0].cache_key, d.actions[0].cache_key);
    assert_eq!(d2.outputs.as_ref().unwrap()["o0"], Value::Int(3));

    // A counted input changes the key.
    let third = run(&t, add(1, 3, "first")).await;
    assert_eq!(single_output(&third), &Value::Int(4));
    assert_eq!(cache_status(&details(&t, &third.run_id).await), "miss");

    // The disabled default records no key.
    let env = t.host.load_file(fixture("basic")).await.unwrap();
    let plain = t
        .host
        .run(&env, RunRequest::new("add_one").input("x", 1i64))
        .await
        .unwrap();
    let d = details(&t, &plain.run_id).await;
    assert_eq!(
        (
            d.actions[0].cache_status.as_deref(),
            &d.actions[0].cache_key
        ),
        (Some("disabled"), &None)
    );
}

#[tokio::test]
async fn overwrite_runs_again_and_replaces_the_entry() {
    let t = test_host().await;
    let first = run(&t, RunRequest::new("versioned").input("x", 4i64)).await;
    let hit = run(&t, RunRequest::new("versioned").input("x", 4i64)).await;
    let d = details(&t, &hit.run_id).await;
    assert_eq!(cache_status(&d), "hit");
    // Same inputs document as the entry's run: the hit points at it and stores nothing.
    let source = details(&t, &first.run_id).await;
    assert_eq!(d.actions[0].inputs_uri, source.actions[0].inputs_uri);
    assert_eq!(d.inputs, source.inputs);
    let hit_dir = t
        .home
        .path()
        .join("store/default/development")
        .join(&hit.run_id);
    assert!(!hit_dir.exists());

    let over = run(
        &t,
        RunRequest::new("versioned")
            .input("x", 4i64)
            .overwrite_cache(true),
    )
    .await;
    assert_eq!(single_output(&over), &Value::Int(8));
    let d = details(&t, &over.run_id).await;
    assert_eq!((cache_status(&d), d.attempts.len()), ("overwrite", 1));
    let entries = t.host.records().cache_list(None).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].run_id, over.run_id);
    assert_ne!(entries[0].run_id, first.run_id);
    assert_eq!(entries[0].task, "fixture-durable.versioned");
}

#[tokio::test]
async fn scope_separates_projects_unless_the_task_caches_globally() {
    let t = test_host().await;
    run(&t, add(5, 5, "").scope("alpha", "dev")).await;
    let other = run(&t, add(5, 5, "").scope("beta", "dev")).await;
    assert_eq!(cache_status(&details(&t, &other.run_id).await), "miss");

    run(
        &t,
        RunRequest::new("global_triple")
            .input("x", 2i64)
            .scope("alpha", "dev"),
    )
    .await;
    let other = run(
        &t,
        RunRequest::new("global_triple")
            .input("x", 2i64)
            .scope("beta", "prod"),
    )
    .await;
    assert_eq!(single_output(&other), &Value::Int(6));
    assert_eq!(cache_status(&details(&t, &other.run_id).await), "hit");
}

#[tokio::test]
async fn entries_older_than_max_age_are_not_reused() {
    let t = test_host().await;
    run(&t, RunRequest::new("short_lived").input("x", 3i64)).await;
    let young = run(&t, RunRequest::new("short_lived").input("x", 3i64)).await;
    assert_eq!(cache_status(&details(&t, &young.run_id).await), "hit");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let old = run(&t, RunRequest::new("short_lived").input("x", 3i64)).await;
    let d = details(&t, &old.run_id).await;
    assert_eq!(cache_status(&d), "miss");
    let miss = d.events.iter().find(|e| e.kind == "cache-miss").unwrap();
    assert!(
        miss.detail
            .as_deref()
            .unwrap()
            .contains("above the max age of 300 ms"),
        "{miss:?}"
    );
}

#[tokio::test]
async fn serialized_identical_runs_execute_once() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("durable")).await.unwrap();
    let req = || {
        RunRequest::new("slow_negate")
            .input("x", 7i64)
            .input("ms", 300i64)
    };
    let (a, b, c, d) = tokio::join!(
        t.host.run(&env, req()),
        t.host.run(&env, req()),
        t.host.run(&env, req()),
        t.host.run(&env, req()),
    );
    let mut executed = 0;
    let mut waited = 0;
    for outcome in [a, b, c, d] {
        let outcome = outcome.unwrap();
        assert_eq!(single_output(&outcome), &Value::Int(-7));
        let d = details(&t, &outcome.run_id).await;
        match cache_status(&d) {
            "miss" => executed += d.attempts.len(),
            "hit" => {
                let hit = d.events.iter().find(|e| e.kind == "cache-hit").unwrap();
                assert!(
                    hit.detail.as_deref().unwrap().contains("after waiting"),
                    "{hit:?}"
                );
                waited += 1;
            }
            other => panic!("unexpected cache status {other}"),
        }
    }
    assert_eq!((executed, waited), (1, 3));
}

#[tokio::test]
async fn content_hashed_files_hit_across_uploads_and_purged_outputs_run_again() {
    let t = test_host().await;
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.bin"), dir.path().join("two.bin"));
    std::fs::write(&one, b"the same bytes").unwrap();
    std::fs::write(&two, b"the same bytes").unwrap();
    let upload = |path| t.host.upload(path, RefKind::File, "default", "development");
    let (first_ref, second_ref) = (upload(&one).await.unwrap(), upload(&two).await.unwrap());
    assert_ne!(first_ref.uri, second_ref.uri);
    let copy = |meta: &RefMeta| RunRequest::new("cached_copy").input("data", meta.to_value());

    let first = run(&t, copy(&first_ref)).await;
    let second = run(&t, copy(&second_ref)).await;
    let d = details(&t, &second.run_id).await;
    assert_eq!(cache_status(&d), "hit", "{:?}", d.events);
    assert_eq!(first.outputs, second.outputs);

    // The copy the entry points at disappears: the next run is a miss that says why, runs,
    // and makes a new copy.
    let copied = reference_of(&first.outputs.as_ref().unwrap()["o0"]);
    let path = copied.uri.strip_prefix("file://").unwrap();
    std::fs::remove_file(path).unwrap();
    let third = run(&t, copy(&first_ref)).await;
    let d = details(&t, &third.run_id).await;
    assert_eq!((cache_status(&d), d.attempts.len()), ("miss", 1));
    let miss = d.events.iter().find(|e| e.kind == "cache-miss").unwrap();
    let why = miss.detail.as_deref().unwrap();
    assert!(why.contains("gone") && why.contains("outputs.o0"), "{why}");
    let new_copy = reference_of(&third.outputs.as_ref().unwrap()["o0"]);
    assert!(std::path::Path::new(new_copy.uri.strip_prefix("file://").unwrap()).exists());

    // The outputs document itself disappears: also a miss.
    let outputs_uri = d.actions[0].outputs_uri.clone().unwrap();
    std::fs::remove_file(outputs_uri.strip_prefix("file://").unwrap()).unwrap();
    let fourth = run(&t, copy(&second_ref)).await;
    let d = details(&t, &fourth.run_id).await;
    assert_eq!((cache_status(&d), d.attempts.len()), ("miss", 1));
}

#[tokio::test]
async fn retries_give_each_attempt_its_own_prefix_and_accept_one() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("flaky_until").input("succeed_on", 3i64)).await;
    assert_eq!(single_output(&out), &Value::Int(3));
    let d = details(&t, &out.run_id).await;
    assert_eq!(phases(&d.attempts), ["failed", "failed", "succeeded"]);
    assert_eq!(d.attempts[0].error_kind.as_deref(), Some("user"));
    assert_eq!(
        kinds(&d.events),
        [
            "created",
            "started",
            "retry-scheduled",
            "started",
            "retry-scheduled",
            "started",
            "succeeded"
        ]
    );
    let accepted = d.actions[0].outputs_uri.as_deref().unwrap();
    assert!(accepted.ends_with(&format!("/{}/a0/3/outputs.msgpack", out.run_id)));
    let prefixes: Vec<String> = d
        .attempts
        .iter()
        .map(|a| format!("{}/{}", a.action_id, a.attempt))
        .collect();
    assert_eq!(prefixes, ["a0/1", "a0/2", "a0/3"]);

    // Too few retries: the last failure is the run's.
    let out = run(&t, RunRequest::new("flaky_until").input("succeed_on", 9i64)).await;
    let failure = out.outputs.unwrap_err();
    assert_eq!(failure.message, "attempt 4 fails");
    assert_eq!(details(&t, &out.run_id).await.attempts.len(), 4);

    // A trap is a system error: retried.
    let out = run(&t, RunRequest::new("trap_once")).await;
    assert_eq!(single_output(&out), &Value::Int(2));
    let d = details(&t, &out.run_id).await;
    assert_eq!(d.attempts[0].error_kind.as_deref(), Some("trap"));

    // A user error that is not retryable: one attempt, whatever the task allows.
    let out = run(&t, RunRequest::new("refuses")).await;
    assert_eq!(out.outputs.unwrap_err().kind, "user");
    assert_eq!(details(&t, &out.run_id).await.attempts.len(), 1);
}

#[tokio::test]
async fn a_retry_replays_traces_without_running_them() {
    let t = test_host().await;
    let out = run(&t, RunRequest::new("traced").input("x", 10i64)).await;
    assert_eq!(single_output(&out), &Value::Int(20 + 10 + 11 + 12));
    let d = details(&t, &out.run_id).await;
    assert_eq!(phases(&d.attempts), ["failed", "succeeded"]);
    // An attempt that wrote nothing to its log has none.
    let log_of = |i: usize| attempt_log(&d.attempts[i]);
    let first = log_of(0);
    assert!(
        first.contains("double ran") && first.contains("item 2 made"),
        "{first}"
    );
    // The second attempt got the call's result and every item back, running neither (the
    // iterator's body is not run again after its items are replayed).
    let second = log_of(1);
    assert!(
        !second.contains("double ran") && !second.contains("item"),
        "{second}"
    );
    let traces: Vec<(&str, &str)> = d
        .events
        .iter()
        .filter(|e| e.kind.starts_with("trace-"))
        .map(|e| (e.kind.as_str(), e.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        traces,
        [
            ("trace-recorded", "double (1 item(s)) by attempt 1"),
            ("trace-recorded", "count (3 item(s)) by attempt 1"),
            ("trace-replayed", "double (1 item(s)) in attempt 2"),
            ("trace-replayed", "count (3 item(s)) in attempt 2"),
        ]
    );
}

#[tokio::test]
async fn gc_removes_old_run_data_and_the_entries_pointing_at_it() {
    let t = test_host().await;
    let first = run(&t, add(2, 2, "")).await;
    let dry = t.host.gc(Duration::ZERO, true).await.unwrap();
    assert_eq!((dry.runs.len(), dry.cache_entries), (1, 1));
    assert!(dry.objects >= 3, "{dry:?}"); // inputs, outputs, log
    let d = details(&t, &first.run_id).await;
    assert!(d.outputs.is_some(), "a dry run removes nothing");

    let done = t.host.gc(Duration::ZERO, false).await.unwrap();
    assert_eq!((done.objects, done.cache_entries), (dry.objects, 1));
    let d = details(&t, &first.run_id).await;
    assert!(d.run.purged_at.is_some());
    assert!(d.outputs.is_none() && d.inputs.is_none());
    assert!(t.host.records().cache_list(None).await.unwrap().is_empty());
    // The key runs again (no dangling entry) and is cached anew.
    let again = run(&t, add(2, 2, "")).await;
    assert_eq!(single_output(&again), &Value::Int(4));
    assert_eq!(cache_status(&details(&t, &again.run_id).await), "miss");
    let later = t.host.gc(Duration::from_secs(3600), false).await.unwrap();
    assert!(later.runs.is_empty(), "a recent run is kept: {later:?}");
}

#[tokio::test]
async fn gc_skips_a_run_whose_store_cannot_be_opened_and_purges_the_others() {
    let t = test_host().await;
    let raw = t.home.path().join("raw");
    let raw_url = format!("file://{}", raw.display());
    let elsewhere = run(&t, add(1, 1, "").raw_data_path(&raw_url)).await;
    let here = run(&t, add(2, 2, "")).await;
    // The raw-data directory becomes a plain file: that store no longer opens.
    std::fs::remove_dir_all(&raw).unwrap();
    std::fs::write(&raw, b"not a directory").unwrap();

    let report = t.host.gc(Duration::ZERO, false).await.unwrap();
    assert_eq!(report.runs, std::slice::from_ref(&here.run_id));
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(report.skipped[0].run, elsewhere.run_id);
    assert!(
        report.skipped[0].reason.contains(&raw_url),
        "{}",
        report.skipped[0].reason
    );
    let kept = details(&t, &elsewhere.run_id).await;
    assert!(kept.run.purged_at.is_none() && kept.outputs.is_some());
    // Once the store opens again, the next gc takes the run it skipped.
    std::fs::remove_file(&raw).unwrap();
    let report = t.host.gc(Duration::ZERO, false).await.unwrap();
    assert_eq!(report.runs, std::slice::from_ref(&elsewhere.run_id));
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_raw_data_path_that_cannot_be_opened_is_refused_before_anything_is_recorded() {
    let t = test_host().await;
    let env = t.host.load_file(fixture("durable")).await.unwrap();
    let err = t
        .host
        .run(&env, add(1, 1, "").raw_data_path("ftp://example/x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("raw-data path: store ftp://example/x: unsupported store"),
        "{err}"
    );
    let filter = RunFilter {
        project: None,
        domain: None,
        limit: 10,
    };
    let listed = t.host.records().list_runs(&filter).await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

/// A host builder on `home` and the database `url`, as `test_host` makes them, for tests that
/// set more (the heartbeat) or share the database with another handle.
fn host_on(home: &std::path::Path, url: &str) -> sluice_host::HostBuilder {
    sluice_host::Host::builder()
        .home(home)
        .database_url(url)
        .max_instances(16)
        .compile_cache_dir(sluice_tests::workspace_root().join("target/test-compiled"))
}

/// A host reports the runs it runs every heartbeat interval, so a run longer than a few
/// intervals ends with a heartbeat well after its start, and none after its end. An interval
/// out of range is refused by name.
#[tokio::test]
async fn a_host_reports_its_long_runs_until_they_end() {
    let home = tempfile::tempdir().unwrap();
    let url = sluice_tests::test_database_url(home.path()).await;
    let builder = host_on(home.path(), &url);
    for wrong in [Duration::ZERO, Duration::from_secs(11)] {
        let err = builder
            .clone()
            .heartbeat_interval(wrong)
            .build()
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            format!("heartbeat interval {wrong:?}: must be above zero and at most 10s")
        );
    }
    let host = builder
        .heartbeat_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let env = host.load_file(fixture("calls")).await.unwrap();
    // Four children of 150 ms, two at a time: about 300 ms.
    let long = host
        .run(
            &env,
            RunRequest::new("slow_map")
                .input("n", 4i64)
                .input("ms", 150i64),
        )
        .await
        .unwrap();
    assert_eq!(single_output(&long), &Value::Int(6));
    let long = host.run_details(&long.run_id).await.unwrap().unwrap().run;
    let beat = long.heartbeat_at.expect("a heartbeat") - long.created_at;
    let ran = long.ended_at.expect("ended") - long.created_at;
    assert!(
        beat >= 200_000,
        "last heartbeat {beat} µs after the start of a run of {ran} µs"
    );
    // None after the run ended (five intervals later, the last one is unchanged).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = host.run_details(&long.id).await.unwrap().unwrap().run;
    assert_eq!(later.heartbeat_at, long.heartbeat_at);
}

/// A host that finds, at a heartbeat, that another process has claimed its run (a resume that
/// took it for stopped) stops the run where it is: `Host::run` returns `TakenOver` and no
/// child of the run starts or finishes here afterwards.
#[tokio::test]
async fn a_run_claimed_by_another_process_stops_at_the_next_heartbeat() {
    let home = tempfile::tempdir().unwrap();
    let url = sluice_tests::test_database_url(home.path()).await;
    let host = host_on(home.path(), &url)
        .heartbeat_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let env = host.load_file(fixture("calls")).await.unwrap();
    // Sixteen children of 200 ms, two at a time: about 1.6 s unless stopped.
    let request = RunRequest::new("slow_map")
        .input("n", 16i64)
        .input("ms", 200i64);
    let here = sluice_host::records::Records::connect(&url).await.unwrap();
    let claim = async {
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let run = loop {
            let runs = host
                .list_runs(&RunFilter {
                    limit: 1,
                    ..Default::default()
                })
                .await
                .unwrap();
            if let Some(run) = runs.into_iter().next() {
                break run;
            }
            assert!(std::time::Instant::now() < give_up, "the run never showed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Let a couple of children finish first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let elsewhere = here.clone().as_process("machine-b:boot-b:7:7");
        assert!(elsewhere
            .claim_run(&run.id, run.host.as_deref())
            .await
            .unwrap());
        run.id
    };
    let (outcome, run_id) = tokio::join!(host.run(&env, request), claim);
    let err = outcome.expect_err("stopped");
    assert_eq!(
        err.to_string(),
        format!(
            "run {run_id} was taken over by another process (a resume that found this host \
             silent): stopped here; that process continues it"
        )
    );
    let succeeded = |d: RunDetails| {
        d.actions
            .iter()
            .filter(|a| a.parent_id.is_some() && a.phase == "succeeded")
            .count()
    };
    // A child's record already on its way to the database when the run stopped may still
    // land (it did finish); after that, nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_stop = succeeded(host.run_details(&run_id).await.unwrap().unwrap());
    assert!(at_stop < 16, "{at_stop} children finished");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let details = host.run_details(&run_id).await.unwrap().unwrap();
    assert_eq!(details.run.host.as_deref(), Some("machine-b:boot-b:7:7"));
    assert_eq!(details.run.phase, "running");
    assert_eq!(succeeded(details), at_stop, "children kept finishing here");
}
