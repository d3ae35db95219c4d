//! The README's main job: `hubsync demo` runs the whole two-way sync against the in-process
//! emulator (with webhook faults on) and ends with both sides identical.

use hubsync::demo::{self, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_syncs_both_ways_under_webhook_faults_and_ends_identical() {
    let report = demo::run(DemoOptions {
        contacts: 400,
        companies: 80,
        local_contacts: 80,
        edits: 40,
        seed: 7,
    })
    .await
    .expect("the demo runs to its report");
    assert!(report.identical, "both sides identical: {report:?}");
    let (local, remote) = report.records["contacts"];
    assert_eq!(local, remote, "contacts on each side");
    // 400 seeded, 80 local of which 40 also in HubSpot: 440 in all.
    assert_eq!(local, 440);
    assert!(
        report.rate_limited.values().sum::<u64>() == 0,
        "no 429 at the demo's pace: {:?}",
        report.rate_limited
    );
}
