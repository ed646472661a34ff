//! The console's live refresh, which polls: what one poll of the rooms page's live part and of
//! a crowded room's costs, against the API list each one resembles (`GET /v1/Rooms`, and a
//! room's participants), in the same run and at the same concurrency. At one poll every two
//! seconds per open page, polls per second times two is how many open console pages one roomd
//! process keeps fresh while doing nothing else.

use super::*;

#[derive(Debug, Serialize)]
pub(crate) struct ConsoleResult {
    pub(crate) rooms_polls_per_s: f64,
    pub(crate) rooms_poll_p50_ms: f64,
    pub(crate) api_rooms_list_per_s: f64,
    /// Rooms page polls over API room lists.
    pub(crate) rooms_ratio: f64,
    pub(crate) room_polls_per_s: f64,
    pub(crate) room_poll_p50_ms: f64,
    pub(crate) api_participants_list_per_s: f64,
    /// Room page polls over API participant lists of the same room.
    pub(crate) room_ratio: f64,
}

/// Signs account 0 in; its session cookie (`name=value`).
async fn sign_in(addr: &str) -> Result<String> {
    let body = format!("AccountSid={}&AuthToken={TOKEN}", account_sid(0));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "POST /console/sign-in HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    out.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .with_context(|| format!("no session: {}", out.lines().next().unwrap_or("")))
}

pub(crate) async fn run(addr: &str, data: &Data, secs: f64) -> Result<ConsoleResult> {
    let cookie = format!("Cookie: {}\r\n", sign_in(addr).await?);
    let get = |path: String| -> MakeRequest { Arc::new(move |_, _| ("GET", path.clone(), None)) };
    let room = data.crowded_room.clone();
    let conns = 8;
    let rooms = http_run_with(
        addr,
        conns,
        secs,
        200,
        get("/console/rooms/live".into()),
        &cookie,
    )
    .await?;
    let list = http_run(addr, conns, secs, 200, get("/v1/Rooms?PageSize=50".into())).await?;
    let one = http_run_with(
        addr,
        conns,
        secs,
        200,
        get(format!("/console/rooms/{room}/live")),
        &cookie,
    )
    .await?;
    let participants = http_run(
        addr,
        conns,
        secs,
        200,
        get(format!("/v1/Rooms/{room}/Participants?PageSize=50")),
    )
    .await?;
    if rooms.errors + one.errors > 0 {
        bail!("console polls failed: {} and {}", rooms.errors, one.errors);
    }
    Ok(ConsoleResult {
        rooms_polls_per_s: rooms.ops_per_s,
        rooms_poll_p50_ms: rooms.p50_ms,
        api_rooms_list_per_s: list.ops_per_s,
        rooms_ratio: ratio(rooms.ops_per_s, list.ops_per_s),
        room_polls_per_s: one.ops_per_s,
        room_poll_p50_ms: one.p50_ms,
        api_participants_list_per_s: participants.ops_per_s,
        room_ratio: ratio(one.ops_per_s, participants.ops_per_s),
    })
}
