use crate::helpers::{spawn_app, Reply, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Follows `next_page_url` from `first` to the end, as the official clients do (verbatim,
/// absolute), returning every page.
async fn walk(app: &TestApp, first: &str) -> Vec<Reply> {
    let mut pages = vec![app.get(first).await];
    while let Some(next) = pages.last().unwrap().body["meta"]["next_page_url"]
        .as_str()
        .map(str::to_string)
    {
        assert!(next.starts_with(&app.address), "{next}");
        let page = app.get(&next[app.address.len()..]).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages.push(page);
        assert!(pages.len() < 100, "paging does not end");
    }
    pages
}

fn sids(page: &Reply) -> Vec<String> {
    page.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_empty_list_has_twilios_meta() {
    let app = spawn_app().await;
    let r = app.get("/v1/Rooms").await;
    assert_eq!(r.status, 200);
    let first = format!("{}/v1/Rooms?PageSize=50&Page=0", app.address);
    assert_eq!(
        r.body,
        json!({"rooms": [], "meta": {"page": 0, "page_size": 50, "first_page_url": first,
            "previous_page_url": null, "url": first, "next_page_url": null, "key": "rooms"}})
    );
}

#[tokio::test]
async fn paging_across_130_rooms_returns_each_room_once_newest_first_and_back_again() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..130 {
        created.push(
            app.create_room(&format!("UniqueName=room-{i}")).await["sid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let pages = walk(&app, "/v1/Rooms?PageSize=50").await;
    assert_eq!(
        pages.iter().map(|p| sids(p).len()).collect::<Vec<_>>(),
        [50, 50, 30]
    );
    let listed: Vec<String> = pages.iter().flat_map(sids).collect();
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(
        listed, newest_first,
        "every room exactly once, newest first"
    );

    for (i, p) in pages.iter().enumerate() {
        let meta = &p.body["meta"];
        assert_eq!(meta["page"], i);
        assert_eq!(meta["page_size"], 50);
        assert_eq!(meta["key"], "rooms");
        assert_eq!(
            meta["first_page_url"],
            format!("{}/v1/Rooms?PageSize=50&Page=0", app.address)
        );
        assert_eq!(meta["previous_page_url"].is_null(), i == 0);
    }
    // Following previous_page_url from the last page gives the same pages back.
    let mut back = pages.last().unwrap().body["meta"]["previous_page_url"]
        .as_str()
        .unwrap()
        .to_string();
    for expected in pages.iter().rev().skip(1) {
        let page = app.get(&back[app.address.len()..]).await;
        assert_eq!(sids(&page), sids(expected));
        assert_eq!(page.body["meta"]["page"], expected.body["meta"]["page"]);
        match page.body["meta"]["previous_page_url"].as_str() {
            Some(prev) => back = prev.to_string(),
            None => assert_eq!(page.body["meta"]["page"], 0),
        }
    }
    // A page's own url reproduces it.
    let second_url = pages[1].body["meta"]["url"].as_str().unwrap();
    assert_eq!(
        sids(&app.get(&second_url[app.address.len()..]).await),
        sids(&pages[1])
    );
    // A page number without a token is an offset.
    let by_number = app.get("/v1/Rooms?PageSize=50&Page=1").await;
    assert_eq!(sids(&by_number), sids(&pages[1]));
}

#[tokio::test]
async fn filters_combine_with_paging_and_travel_in_every_page_url() {
    let app = spawn_app().await;
    let mut completed = HashSet::new();
    for i in 0..30 {
        let sid = app.create_room("").await["sid"]
            .as_str()
            .unwrap()
            .to_string();
        if i % 3 == 0 {
            app.complete_room(&sid).await;
            completed.insert(sid);
        }
    }
    let pages = walk(&app, "/v1/Rooms?Status=completed&PageSize=3").await;
    let listed: Vec<String> = pages.iter().flat_map(sids).collect();
    assert_eq!(listed.len(), 10);
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), completed);
    for p in &pages {
        assert!(p.body["meta"]["url"]
            .as_str()
            .unwrap()
            .contains("Status=completed&PageSize=3"));
        for r in p.body["rooms"].as_array().unwrap() {
            assert_eq!(r["status"], "completed");
        }
    }
    let in_progress: Vec<String> = walk(&app, "/v1/Rooms?PageSize=7")
        .await
        .iter()
        .flat_map(sids)
        .collect();
    assert_eq!(in_progress.len(), 20, "the default Status is in-progress");
    assert!(in_progress.iter().all(|s| !completed.contains(s)));

    let named = app.create_room("UniqueName=needle").await;
    let found = app.get("/v1/Rooms?UniqueName=needle").await;
    assert_eq!(sids(&found), [named["sid"].as_str().unwrap()]);
    assert_eq!(
        found.body["meta"]["url"],
        format!(
            "{}/v1/Rooms?UniqueName=needle&PageSize=50&Page=0",
            app.address
        )
    );
    assert_eq!(
        sids(
            &app.get("/v1/Rooms?UniqueName=needle&Status=completed")
                .await
        )
        .len(),
        0
    );
}

#[tokio::test]
async fn date_filters_are_inclusive_after_and_exclusive_before() {
    let app = spawn_app().await;
    let mut by_day = Vec::new();
    for day in ["2020-01-01", "2020-01-02", "2020-01-03"] {
        let sid = app.create_room("").await["sid"]
            .as_str()
            .unwrap()
            .to_string();
        sqlx::query("UPDATE rooms SET date_created = ($2::date::timestamp AT TIME ZONE 'UTC') WHERE sid = $1")
            .bind(&sid)
            .bind(day)
            .execute(&app.pool)
            .await
            .unwrap();
        by_day.push(sid);
    }
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let r = app.get(&format!("/v1/Rooms?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            let mut s = sids(&r);
            s.sort();
            s
        }
    };
    let pick = |idx: &[usize]| {
        let mut v: Vec<String> = idx.iter().map(|i| by_day[*i].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(list("DateCreatedAfter=2020-01-02").await, pick(&[1, 2]));
    assert_eq!(
        list("DateCreatedAfter=2020-01-02T00:00:00Z").await,
        pick(&[1, 2])
    );
    assert_eq!(
        list("DateCreatedAfter=2020-01-02T00:00:01Z").await,
        pick(&[2])
    );
    assert_eq!(list("DateCreatedBefore=2020-01-03").await, pick(&[0, 1]));
    assert_eq!(
        list("DateCreatedBefore=2020-01-02T00:00:01Z").await,
        pick(&[0, 1])
    );
    assert_eq!(
        list("DateCreatedAfter=2020-01-02&DateCreatedBefore=2020-01-03").await,
        pick(&[1])
    );
    assert_eq!(list("DateCreatedAfter=2020-01-04").await, pick(&[]));

    let r = app
        .get("/v1/Rooms?DateCreatedAfter=2020-01-02T00:00:00Z&PageSize=1")
        .await;
    assert_eq!(
        r.body["meta"]["next_page_url"]
            .as_str()
            .unwrap()
            .split("&Page=")
            .next()
            .unwrap(),
        format!(
            "{}/v1/Rooms?DateCreatedAfter=2020-01-02T00%3A00%3A00Z&PageSize=1",
            app.address
        )
    );
}

#[tokio::test]
async fn bad_paging_and_filter_values_are_400_not_500() {
    let app = spawn_app().await;
    for q in [
        "PageSize=0",
        "PageSize=1001",
        "PageSize=abc",
        "PageSize=-5",
        "Page=-1",
        "Page=x",
        "DateCreatedAfter=yesterday",
        "DateCreatedBefore=2020-13-01",
        "Status=bogus",
        "PageSize=5&PageSize=6",
        "Status=%FF",
        "Status=%zz",
        // Years PostgreSQL cannot hold.
        "DateCreatedAfter=-5000-01-01T00:00:00",
        "DateCreatedBefore=%2B200000-01-01T00:00:00Z",
        "DateCreatedAfter=0000-01-01",
        // A page number without a token may not skip more than 10,000 rooms.
        "Page=11&PageSize=1000",
        "Page=4294967295&PageSize=1000",
    ] {
        app.get(&format!("/v1/Rooms?{q}"))
            .await
            .assert_error(400, 20001);
    }
    for q in [
        "PageToken=garbage",
        "PageToken=PARM0123",
        "PageToken=PXRM0123456789abcdef0123456789abcdef",
        "PageToken=PARM0123456789abcdef0123456789abcdef",
    ] {
        app.get(&format!("/v1/Rooms?{q}"))
            .await
            .assert_error(400, 21481);
    }
    // A token naming another account's room is as invalid as one naming no room.
    let other = crate::helpers::create_account(&app.pool, "other").await;
    let theirs = app
        .request_as(Some(&other), reqwest::Method::POST, "/v1/Rooms", Some(""))
        .await;
    let token = format!("PA{}", theirs.body["sid"].as_str().unwrap());
    app.get(&format!("/v1/Rooms?PageToken={token}"))
        .await
        .assert_error(400, 21481);
    let _: Value = Value::Null;
    // Up to the bound, a page number still works.
    assert_eq!(app.get("/v1/Rooms?Page=10&PageSize=1000").await.status, 200);
}
