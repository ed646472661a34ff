//! What a run reports: per scenario, the API and the baseline side by side, as a table and as
//! JSON.

use super::*;

#[derive(Serialize)]
pub(crate) struct ScenarioResult {
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    pub(crate) api_ops_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) api_errors: u64,
    pub(crate) sql_ops_per_s: f64,
    pub(crate) sql_p50_ms: f64,
    pub(crate) ratio: f64,
    /// The same statements through roomd's own worker pool (main concurrency only): what the
    /// HTTP layer costs over the best direct path, without sqlx's release round trip.
    pub(crate) own_pool_sql_ops_per_s: Option<f64>,
    pub(crate) ratio_to_own_pool: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct Report {
    pub(crate) scenarios: Vec<ScenarioResult>,
    /// The console's polls against the API lists they resemble (see `console.rs`).
    pub(crate) console: Option<super::console::ConsoleResult>,
    pub(crate) callbacks: Option<super::callbacks::CallbackResult>,
    pub(crate) claims: Option<super::claims::ClaimCost>,
    pub(crate) sweeper_rooms_per_s: f64,
    pub(crate) deep_page_ratio: f64,
    /// join_media's API throughput over join's (same concurrency): what the media plane's
    /// work (a Janus room, a token, the room's allowed list) costs a join.
    pub(crate) join_media_vs_join: Option<f64>,
    /// Recording conversion throughput (see `conversion.rs`).
    pub(crate) conversion: Option<super::conversion::ConversionResult>,
    /// Composition speed, per format (see `composition.rs`).
    pub(crate) composition: Vec<super::composition::CompositionResult>,
    pub(crate) argon2_verifications_steady: f64,
    pub(crate) requests_steady: f64,
    pub(crate) peak_rss_mb: f64,
    pub(crate) concurrency: usize,
    pub(crate) rooms_preloaded: i64,
    pub(crate) load_generator_cpu_share: f64,
    pub(crate) seconds_per_run: f64,
}

pub(crate) fn print_table(r: &Report, swept: usize) {
    println!(
        "| scenario | conns | API ops/s | p50 ms | p99 ms | direct SQL ops/s | ratio API/SQL | SQL via roomd's pool ops/s | ratio API/that |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let or_dash =
        |v: Option<f64>, decimals: usize| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    for s in &r.scenarios {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {} | {} |",
            s.name,
            s.concurrency,
            s.api_ops_per_s,
            s.p50_ms,
            s.p99_ms,
            s.sql_ops_per_s,
            s.ratio,
            or_dash(s.own_pool_sql_ops_per_s, 0),
            or_dash(s.ratio_to_own_pool, 2)
        );
    }
    println!();
    println!(
        "rooms preloaded: {}; seconds per run: {}",
        r.rooms_preloaded, r.seconds_per_run
    );
    if let Some(c) = &r.console {
        println!(
            "console (8 connections): the rooms page's live part {:.0} polls/s, p50 {:.2} ms, {:.2} of the API's room list ({:.0}/s); a room's (50 participants connected, 50 gone) {:.0} polls/s, p50 {:.2} ms, {:.2} of its API participant list ({:.0}/s)",
            c.rooms_polls_per_s, c.rooms_poll_p50_ms, c.rooms_ratio, c.api_rooms_list_per_s,
            c.room_polls_per_s, c.room_poll_p50_ms, c.room_ratio, c.api_participants_list_per_s
        );
    }
    if let Some(c) = &r.callbacks {
        println!(
            "status callbacks: a burst of {} made at {:.0} events/s and delivered at {:.0} events/s; at {:.0} events/s ({} events), lag from commit to delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            c.burst_events, c.burst_created_per_s, c.burst_events_per_s, c.paced_events_per_s, c.paced_events, c.lag_p50_ms, c.lag_p99_ms, c.lag_max_ms
        );
    }
    if let Some(c) = &r.claims {
        println!(
            "status callback claim (50 due events of one account), over {} claims: p50 {:.2} ms, p99 {:.2} ms with nothing else queued; p50 {:.2} ms, p99 {:.2} ms with {} events of another account queued behind receivers that never answer",
            c.claims, c.empty_p50_ms, c.empty_p99_ms, c.backlog_p50_ms, c.backlog_p99_ms, c.backlog_events
        );
    }
    println!(
        "sweeper: {:.0} rooms/s ({swept} rooms)",
        r.sweeper_rooms_per_s
    );
    println!(
        "list_deep p50 / list p50 (at {} conns): {:.2}",
        r.concurrency, r.deep_page_ratio
    );
    println!(
        "argon2 verifications in the steady state: {} over {:.0} requests",
        r.argon2_verifications_steady, r.requests_steady
    );
    if let Some(v) = r.join_media_vs_join {
        println!(
            "join_media ops/s / join ops/s (at {} conns): {v:.2}",
            r.concurrency
        );
    }
    println!("roomd peak RSS: {:.1} MB", r.peak_rss_mb);
    println!(
        "load generator CPU share (of all cores): {:.0}%",
        r.load_generator_cpu_share * 100.0
    );
}
