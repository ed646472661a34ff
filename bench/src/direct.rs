//! The baseline: the db functions roomd calls for each scenario, run directly.

use super::*;

pub(crate) fn ratio(api: f64, sql: f64) -> f64 {
    if sql > 0.0 {
        api / sql
    } else {
        0.0
    }
}

/// Where a direct run sends its statements: an sqlx pool (the baseline), or roomd's own
/// worker pool (to show what the pool itself is worth).
pub(crate) enum Direct {
    Sqlx(PgPool),
    Own(Arc<WorkerPool>),
}

impl Direct {
    async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error> + BreaksConnection,
    {
        match self {
            // What `query.fetch_*(&pool)` does: acquire, run, and release (sqlx pings on release).
            Direct::Sqlx(pool) => work(&mut *pool.acquire().await?).await,
            Direct::Own(pool) => pool.run(work).await,
        }
    }
}

/// `work` in its own transaction, as `WorkerPool::transaction` runs it (BEGIN, the work, COMMIT
/// or ROLLBACK), on a connection `Direct::run` lends.
async fn in_transaction<T, E: From<sqlx::Error>>(
    conn: &mut PgConnection,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E> {
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    match work(conn).await {
        Ok(done) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(done)
        }
        Err(e) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            Err(e)
        }
    }
}

/// The direct-SQL side of one scenario.
pub(crate) async fn direct_run(
    name: &str,
    direct: Direct,
    data: &Data,
    concurrency: usize,
    secs: f64,
    to_complete: Arc<Vec<String>>,
) -> Result<Run> {
    let acct = account_sid(0);
    let run_tag = format!("{:x}", rand_u64());
    let pool = Arc::new(direct);
    let run = match name {
        "create" => {
            let room =
                CreateRoom::from_params(&Params::parse(b"").map_err(|e| anyhow::anyhow!("{e}"))?)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, mut room, tag) =
                    (pool.clone(), acct.clone(), room.clone(), run_tag.clone());
                async move {
                    room.unique_name = Some(
                        roomd::domain::room::UniqueName::parse(&format!("sql-{tag}-{n}"))
                            .map_err(|e| anyhow::anyhow!("{e}"))?,
                    );
                    let sid = roomd::domain::sid::RoomSid::generate();
                    pool.run(async |c| rooms::insert(c, &acct, &sid, &room).await)
                        .await?;
                    Ok(())
                }
            })
            .await?
        }
        "fetch" | "fetch_by_name" => {
            let by_name = name == "fetch_by_name";
            let keys = if by_name {
                data.names.clone()
            } else {
                data.sids.clone()
            };
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, keys) = (pool.clone(), acct.clone(), keys.clone());
                async move {
                    let k = pick(&keys, n);
                    let key = if by_name {
                        RoomKey::Name(k)
                    } else {
                        RoomKey::Sid(k)
                    };
                    pool.run(async |c| rooms::fetch(c, &acct, key).await)
                        .await?
                        .context("room missing")?;
                    Ok(())
                }
            })
            .await?
        }
        "list" | "list_deep" => {
            let deep = name == "list_deep";
            let query = if deep {
                format!(
                    "Status=completed&PageSize=50&Page=10000&PageToken={}",
                    data.deep_token
                )
            } else {
                "PageSize=50".to_string()
            };
            let page = PageRequest::from_params(
                &Params::parse(query.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?,
                "RM",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert!(deep == matches!(page.cursor, Cursor::After(_)));
            let filter = RoomFilter {
                status: if deep {
                    RoomStatus::Completed
                } else {
                    RoomStatus::InProgress
                },
                unique_name: None,
                created_on_or_after: None,
                created_before: None,
            };
            sql_run(concurrency, secs, move |_| {
                let (pool, acct, filter, page) =
                    (pool.clone(), acct.clone(), filter.clone(), page.clone());
                async move {
                    match pool
                        .run(async |c| roomd::db::room_list::list(c, &acct, &filter, &page).await)
                        .await
                    {
                        Ok(p) if p.rows.len() == 50 => Ok(()),
                        Ok(_) => bail!("short page"),
                        Err(_) => bail!("list failed"),
                    }
                }
            })
            .await?
        }
        "list_completed_by_name" => {
            let names = data.completed_names.clone();
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, names) = (pool.clone(), acct.clone(), names.clone());
                async move {
                    let filter = RoomFilter {
                        status: RoomStatus::Completed,
                        unique_name: Some(
                            roomd::domain::room::UniqueName::parse(pick(&names, n))
                                .map_err(|e| anyhow::anyhow!("{e}"))?,
                        ),
                        created_on_or_after: None,
                        created_before: None,
                    };
                    let page = PageRequest::from_params(
                        &Params::parse(b"PageSize=50").map_err(|e| anyhow::anyhow!("{e}"))?,
                        "RM",
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                    match pool
                        .run(async |c| roomd::db::room_list::list(c, &acct, &filter, &page).await)
                        .await
                    {
                        Ok(p) if !p.rows.is_empty() => Ok(()),
                        Ok(_) => bail!("no room by that name"),
                        Err(_) => bail!("list failed"),
                    }
                }
            })
            .await?
        }
        "complete" => {
            let sids = to_complete.clone();
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, sids) = (pool.clone(), acct.clone(), sids.clone());
                async move {
                    let sid = sids
                        .get(n as usize)
                        .context("ran out of rooms to complete")?;
                    // As the route: the room locked, then completed, in one transaction.
                    let done = pool
                        .run(async |c| {
                            in_transaction(c, async |c| {
                                rooms::complete_named(c, &acct, Some(sid), sid).await
                            })
                            .await
                        })
                        .await?;
                    anyhow::ensure!(
                        matches!(done, rooms::Completion::Completed(_)),
                        "room was not in progress"
                    );
                    Ok(())
                }
            })
            .await?
        }
        "join" => {
            let sids = to_complete.clone();
            let new_room =
                CreateRoom::from_params(&Params::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, sids, tag, new_room) = (
                    pool.clone(),
                    acct.clone(),
                    sids.clone(),
                    run_tag.clone(),
                    new_room.clone(),
                );
                async move {
                    let sid = sids
                        .get((n / JOINS_PER_ROOM) as usize)
                        .context("ran out of rooms to join")?;
                    let identity = Identity::parse(&format!("sql-{tag}-{n}"))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let room_sid = roomd::domain::sid::RoomSid::parse(sid).context("a room SID")?;
                    let join = Join {
                        account_sid: &acct,
                        segment: sid,
                        sid: Some(&room_sid),
                        identity: &identity,
                        grant: None,
                        new_room: &new_room,
                        media: None,
                    };
                    pool.run(async |c| {
                        in_transaction(c, async |c| {
                            roomd::db::participant_join::join(c, &join).await
                        })
                        .await
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("join refused: {e:?}"))?;
                    Ok(())
                }
            })
            .await?
        }
        "list_participants" => {
            let room = data.crowded_room.clone();
            let page = PageRequest::from_params(
                &Params::parse(b"PageSize=50").map_err(|e| anyhow::anyhow!("{e}"))?,
                "PA",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let filter = ParticipantFilter {
                status: None,
                identity: None,
                created_on_or_after: None,
                created_before: None,
            };
            sql_run(concurrency, secs, move |_| {
                let (pool, acct, room, page, filter) = (
                    pool.clone(),
                    acct.clone(),
                    room.clone(),
                    page.clone(),
                    filter.clone(),
                );
                async move {
                    // What the route does: find the room, then read the page, on one connection.
                    let found = pool
                        .run(async |c| -> Result<_, roomd::db::DbError> {
                            let Some(r) = rooms::find(c, &acct, [RoomKey::Sid(&room)]).await?
                            else {
                                return Ok(None);
                            };
                            Ok(Some(participants::list(c, &r, &filter, &page).await?))
                        })
                        .await;
                    match found {
                        Ok(Some(p)) if p.rows.len() == 50 => Ok(()),
                        _ => bail!("the crowded room's page was not 50 participants"),
                    }
                }
            })
            .await?
        }
        "subscribed_tracks" => {
            let room = data.crowded_room.clone();
            let page = PageRequest::from_params(
                &Params::parse(b"PageSize=50").map_err(|e| anyhow::anyhow!("{e}"))?,
                "MT",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            sql_run(concurrency, secs, move |_| {
                let (pool, acct, room, page) =
                    (pool.clone(), acct.clone(), room.clone(), page.clone());
                async move {
                    // What the route does: the room, the subscriber, its rules, then the page.
                    let found = pool
                        .run(async |c| -> Result<_, roomd::db::DbError> {
                            let Some(r) = rooms::find(c, &acct, [RoomKey::Sid(&room)]).await?
                            else {
                                return Ok(None);
                            };
                            let keys = [participants::ParticipantKey::Identity("user-1")];
                            let Some(p) = participants::find(c, &acct, &r.sid, &keys).await? else {
                                return Ok(None);
                            };
                            let (rules, _) =
                                roomd::db::subscribe_rules::subscribe_rules(&mut *c, &p.sid)
                                    .await?;
                            Ok(Some(
                                roomd::db::tracks::list_subscribed(c, &p, &rules, &page).await?,
                            ))
                        })
                        .await;
                    match found {
                        Ok(Some(p)) if p.rows.len() == 50 => Ok(()),
                        _ => bail!("the subscriber's page was not 50 tracks"),
                    }
                }
            })
            .await?
        }
        _ => unreachable!(),
    };
    Ok(run)
}
