//! The web console over real HTTP: sign-in and its refusals, the session cookie, what a page
//! shows (only the session's account, tenant values as text), the actions (each through the
//! API's own path) and the checks every action passes (same origin, CSRF token), session
//! revocation by sign-out, token rotation and key deletion, the test clock, and the setting
//! that turns the console off. The browser suite (tests/console/) drives the same pages in
//! Chromium.

use crate::helpers::{
    create_account, create_api_key, create_clocked_account, enc, spawn_app, spawn_app_with,
    Options, TestAccount, TestApp,
};
use crate::receiver::{Answer, Receiver};
use reqwest::header::{HeaderMap, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

/// A browser-like client of one console session (no redirects followed).
struct Console {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form") + 19;
        self.body[at..at + 43].to_string()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn read(resp: reqwest::Response) -> Page {
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Posts the sign-in form.
async fn sign_in_form(app: &TestApp, sid: &str, token: &str) -> Page {
    read(
        client()
            .post(app.url("/console/sign-in"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("AccountSid={}&AuthToken={}", enc(sid), enc(token)))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn sign_in(app: &TestApp, sid: &str, token: &str) -> Console {
    let page = sign_in_form(app, sid, token).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/console/rooms");
    let set = page.headers[SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    Console {
        client: client(),
        base: app.address.clone(),
        cookie,
    }
}

impl Console {
    async fn get(&self, path: &str) -> Page {
        read(
            self.client
                .get(format!("{}{path}", self.base))
                .header("Cookie", &self.cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A form post as the console's own page sends it (`Origin` this host).
    async fn post(&self, path: &str, form: &str) -> Page {
        let origin = self.base.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    async fn post_from(&self, path: &str, form: &str, origin: Option<&str>) -> Page {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        read(req.send().await.unwrap()).await
    }

    /// The CSRF token of this session (from its rooms page).
    async fn csrf(&self) -> String {
        self.get("/console/rooms").await.csrf()
    }
}

#[tokio::test]
async fn the_console_signs_in_only_with_a_valid_credential_and_shows_only_its_account() {
    let app = spawn_app().await;
    // Signed out, every page leads to the sign-in form.
    let out = read(
        client()
            .get(app.url("/console/rooms"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((out.status, out.location()), (303, "/console/sign-in"));
    let form = read(
        client()
            .get(app.url("/console/sign-in"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(form.status, 200);
    for text in [
        ">Account SID</label>",
        ">Auth token</label>",
        ">Sign in</button>",
    ] {
        assert!(form.body.contains(text), "{text}");
    }
    let csp = form.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(form.headers["cache-control"], "no-store");

    // A wrong token: the form again with an error, and no session.
    let wrong = sign_in_form(&app, &app.account.sid, &"0".repeat(32)).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("do not match"), "{}", wrong.body);
    assert!(wrong.headers.get(SET_COOKIE).is_none());
    let odd = sign_in_form(&app, "not a sid", "x").await;
    assert_eq!(odd.status, 401);

    // The right one: a cookie scripts cannot read, sent only by this site, for /console.
    let page = sign_in_form(&app, &app.account.sid, &app.account.token).await;
    let set = page.headers[SET_COOKIE].to_str().unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let me = sign_in(&app, &app.account.sid, &app.account.token).await;

    // A tenant's values show as text; another account's rooms never show.
    let xss = "<img src=x onerror=alert(1)>";
    let mine = app.create_room(&format!("UniqueName={}", enc(xss))).await;
    let other = create_account(&app.pool, "other").await;
    let theirs = app
        .request_as(
            Some(&other),
            reqwest::Method::POST,
            "/v1/Rooms",
            Some("UniqueName=theirs"),
        )
        .await;
    assert_eq!(theirs.status, 201);
    let rooms = me.get("/console/rooms").await;
    assert_eq!(rooms.status, 200);
    assert!(
        rooms.body.contains("&#60;img src=x onerror=alert(1)&#62;")
            || rooms.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        rooms.body
    );
    assert!(!rooms.body.contains(xss));
    assert!(rooms.body.contains(mine["sid"].as_str().unwrap()));
    assert!(!rooms.body.contains(theirs.body["sid"].as_str().unwrap()));
    let live = me.get("/console/rooms/live").await;
    assert!(live.headers.contains_key("x-console-digest"));
    assert!(live.body.contains(mine["sid"].as_str().unwrap()));
    let foreign = me
        .get(&format!(
            "/console/rooms/{}",
            theirs.body["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(foreign.status, 404);
    assert!(!foreign.body.contains("theirs"));
    let room = me
        .get(&format!("/console/rooms/{}", mine["sid"].as_str().unwrap()))
        .await;
    assert_eq!(room.status, 200);
    assert!(!room.body.contains(xss));

    // Filters as the API's; a bad one is the API's message on a page, not a 500.
    let completed = me.get("/console/rooms?Status=completed").await;
    assert!(!completed.body.contains(mine["sid"].as_str().unwrap()));
    let bad = me.get("/console/rooms?Status=nope").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Status must be one of"));

    // An API key signs in for its account; deleting the key ends that session.
    let key = create_api_key(&app.pool, &app.account.sid).await;
    let by_key = sign_in(&app, &key.sid, &key.secret).await;
    assert_eq!(by_key.get("/console/rooms").await.status, 200);
    assert!(roomd::db::api_keys::delete(&app.pool, &key.sid)
        .await
        .unwrap());
    assert_eq!(by_key.get("/console/rooms").await.status, 303);

    // Sign-out ends the session everywhere, not only its cookie.
    let csrf = me.csrf().await;
    let out = me.post("/console/sign-out", &format!("csrf={csrf}")).await;
    assert_eq!((out.status, out.location()), (303, "/console/sign-in"));
    assert!(out.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(me.get("/console/rooms").await.status, 303);

    // Rotating the auth token ends the sessions it opened.
    let again = sign_in(&app, &app.account.sid, &app.account.token).await;
    assert_eq!(again.get("/console/rooms").await.status, 200);
    let hash = roomd::auth::credentials::hash_token("a new token");
    roomd::db::accounts::set_token_hash(&app.pool, &app.account.sid, &hash, None)
        .await
        .unwrap();
    assert_eq!(again.get("/console/rooms").await.status, 303);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM console_sessions WHERE account_sid = $1")
            .bind(&app.account.sid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn console_actions_do_what_the_api_does_and_refuse_posts_from_elsewhere() {
    let app = spawn_app().await;
    // The first delivery fails, so the log has two attempts to show.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receiver = Receiver::answering(move |_| {
        let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Answer::Status(if n == 0 { 500 } else { 204 }) }
    })
    .await;
    let me = sign_in(&app, &app.account.sid, &app.account.token).await;
    let csrf = me.csrf().await;

    // Create, with the form's empty fields left out.
    let made = me
        .post(
            "/console/rooms",
            &format!(
                "csrf={csrf}&UniqueName=standup&Type=group&MaxParticipants=&StatusCallback={}",
                enc(&receiver.url("/cb"))
            ),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let sid = made
        .location()
        .trim_start_matches("/console/rooms/")
        .to_string();
    let room = app.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(room.body["unique_name"], "standup");
    assert_eq!(room.body["status"], "in-progress");
    let refused = me
        .post("/console/rooms", &format!("csrf={csrf}&MaxParticipants=0"))
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("MaxParticipants"), "{}", refused.body);

    // Cross-site posts and posts without the token change nothing.
    let end = format!("/console/rooms/{sid}/end");
    for (form, origin) in [
        (String::new(), Some(app.address.as_str())),
        ("csrf=AAAA".to_string(), Some(app.address.as_str())),
        (format!("csrf={csrf}"), Some("http://evil.example")),
        (format!("csrf={csrf}"), Some("null")),
    ] {
        let r = me.post_from(&end, &form, origin).await;
        assert_eq!(r.status, 403, "{form} from {origin:?}");
    }
    let other = sign_in(&app, &app.account.sid, &app.account.token).await;
    let foreign_token = other.csrf().await;
    assert_ne!(foreign_token, csrf);
    assert_eq!(
        me.post(&end, &format!("csrf={foreign_token}")).await.status,
        403
    );
    let fetched = me
        .client
        .post(format!("{}{end}", app.address))
        .header("Cookie", &me.cookie)
        .header("Sec-Fetch-Site", "same-site")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 403);
    assert_eq!(
        app.get(&format!("/v1/Rooms/{sid}")).await.body["status"],
        "in-progress"
    );

    // Kick: the participant leaves as by the API's kick.
    let p = app.join(&sid, "alice").await;
    let page = me.get(&format!("/console/rooms/{sid}")).await;
    assert!(page.body.contains("alice"));
    let kicked = me
        .post(
            &format!(
                "/console/rooms/{sid}/participants/{}/kick",
                p["sid"].as_str().unwrap()
            ),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(
        (kicked.status, kicked.location()),
        (303, format!("/console/rooms/{sid}").as_str())
    );
    let gone = app
        .get(&format!(
            "/v1/Rooms/{sid}/Participants/{}",
            p["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(gone.body["status"], "disconnected");
    let page = me.get(&format!("/console/rooms/{sid}")).await;
    assert!(
        page.body.contains("Participants who left (1)"),
        "{}",
        page.body
    );

    // The log shows each attempt; Replay sends the delivered room-created event again.
    receiver
        .until(|r| (r.iter().filter(|x| x.event() == "room-created").count() == 2).then_some(()))
        .await;
    let log = me.get(&format!("/console/rooms/{sid}")).await;
    let tries = log.body.split("<ol class=\"tries\">").nth(1).unwrap_or("");
    assert!(
        tries.contains("#1 ") && tries.contains("HTTP 500"),
        "{tries}"
    );
    assert!(
        tries.contains("#2 ") && tries.contains("HTTP 204"),
        "{tries}"
    );
    let events = app.get(&format!("/v1/Rooms/{sid}/Callbacks")).await;
    let event = events.body["callbacks"][0]["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let replayed = me
        .post(
            &format!("/console/rooms/{sid}/callbacks/{event}/replay"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(replayed.status, 303);
    receiver
        .until(|r| (r.iter().filter(|x| x.event() == "room-created").count() == 3).then_some(()))
        .await;

    // End: as the API's completion; ending again is the API's refusal, worded.
    assert_eq!(me.post(&end, &format!("csrf={csrf}")).await.status, 303);
    assert_eq!(
        app.get(&format!("/v1/Rooms/{sid}")).await.body["status"],
        "completed"
    );
    let twice = me.post(&end, &format!("csrf={csrf}")).await;
    assert_eq!(twice.status, 400);
    assert!(twice.body.contains("Room completed"));

    // A room named by its unique name (with a space) in the path: back to it by SID, since an
    // ended room is no longer found by name.
    let spaced = app.create_room("UniqueName=with+space").await;
    let named = me
        .post("/console/rooms/with%20space/end", &format!("csrf={csrf}"))
        .await;
    let by_sid = format!("/console/rooms/{}", spaced["sid"].as_str().unwrap());
    assert_eq!((named.status, named.location()), (303, by_sid.as_str()));
    assert_eq!(me.get(&by_sid).await.status, 200);

    // A recording that does not exist is a 404 page.
    let none = me
        .post(
            &format!(
                "/console/rooms/{sid}/recordings/RT{}/delete",
                "0".repeat(32)
            ),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn a_test_clock_account_advances_its_clock_from_the_console() {
    let app = spawn_app().await;
    let clocked = create_clocked_account(&app.pool, "clocked").await;
    let me = sign_in(&app, &clocked.sid, &clocked.token).await;
    let rooms = me.get("/console/rooms").await;
    assert!(rooms.body.contains("href=\"/console/clock\""));
    let before = app
        .request_as(Some(&clocked), reqwest::Method::GET, "/v1/TestClock", None)
        .await;
    let page = me.get("/console/clock").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    let moved = me
        .post("/console/clock", &format!("csrf={csrf}&Advance=90"))
        .await;
    assert_eq!((moved.status, moved.location()), (303, "/console/clock"));
    let after = app
        .request_as(Some(&clocked), reqwest::Method::GET, "/v1/TestClock", None)
        .await;
    let t = |r: &crate::helpers::Reply| {
        chrono::DateTime::parse_from_rfc3339(r.body["frozen_time"].as_str().unwrap()).unwrap()
    };
    assert_eq!((t(&after) - t(&before)).num_seconds(), 90);
    let backwards = me
        .post("/console/clock", &format!("csrf={csrf}&Advance=-5"))
        .await;
    assert_eq!(backwards.status, 400);
    // An account on real time has no clock page.
    let real = sign_in(&app, &app.account.sid, &app.account.token).await;
    assert!(!real
        .get("/console/rooms")
        .await
        .body
        .contains("/console/clock\""));
    assert_eq!(real.get("/console/clock").await.status, 404);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_as_basic_auth_is_and_the_console_can_be_off() {
    let app = spawn_app().await;
    let victim: TestAccount = create_account(&app.pool, "victim").await;
    let mut statuses = Vec::new();
    for _ in 0..21 {
        statuses.push(sign_in_form(&app, &victim.sid, "wrong").await.status);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    let throttled = sign_in_form(&app, &victim.sid, &victim.token).await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.headers.contains_key("retry-after"));
    assert!(throttled.headers.get(SET_COOKIE).is_none());

    let off = spawn_app_with(Options {
        console: false,
        ..Options::default()
    })
    .await;
    let r = client()
        .get(off.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The API is untouched.
    assert_eq!(off.get("/v1/Rooms").await.status, 200);
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_secure_and_posts_from_it_are_the_consoles_own() {
    let app = spawn_app_with(Options {
        public_url: Some("https://video.example.com/roomd".into()),
        ..Options::default()
    })
    .await;
    let page = sign_in_form(&app, &app.account.sid, &app.account.token).await;
    assert!(page.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    let me = sign_in(&app, &app.account.sid, &app.account.token).await;
    let csrf = me.csrf().await;
    let room = app.create_room("UniqueName=proxied").await;
    let end = format!("/console/rooms/{}/end", room["sid"].as_str().unwrap());
    // A reverse proxy passes its own Host: the page's Origin is the public URL's.
    let elsewhere = me
        .post_from(
            &end,
            &format!("csrf={csrf}"),
            Some("https://evil.example.com"),
        )
        .await;
    assert_eq!(elsewhere.status, 403);
    let own = me
        .post_from(
            &end,
            &format!("csrf={csrf}"),
            Some("https://video.example.com"),
        )
        .await;
    assert_eq!(own.status, 303, "{}", own.body);
}
