//! argon2 verification on a fixed set of threads, each reusing one memory block, served fairly
//! between accounts.
//!
//! An argon2id verification with the default parameters fills a 19 MiB block. Allocated per
//! call on the blocking pool, a flood of wrong tokens left the process hundreds of MiB (or, with
//! few malloc arenas, gigabytes) larger for good. Here one thread per core owns its block for the
//! life of the process, so argon2 memory is `cores × 19 MiB`, whatever the load.
//!
//! Jobs wait in one queue per *fair key* (the SID they claim), taken round-robin: a flood for one
//! SID, however many connections it uses, gets one turn in each round, so another account's
//! first request waits for at most one verification per other waiting SID, not for the flood.
//! Requests for the same credential share one verification. The queues are bounded; past the
//! bound a request is refused at once (`Busy`) rather than held.

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Verifications waiting for one fair key, at most (distinct credentials; duplicates share).
const MAX_QUEUED_PER_KEY: usize = 8;
/// Verifications waiting in all, at most, per thread: with ~25 ms each, a job admitted to a full
/// queue waits under half a second; past it, a request is refused at once instead.
const MAX_QUEUED_PER_THREAD: usize = 16;
/// The largest argon2 memory cost (KiB) a stored hash may ask for; roomd writes 19 MiB ones.
const MAX_M_COST_KIB: u32 = 64 * 1024;

/// The queues are full: the caller should answer 429 without verifying.
#[derive(Debug)]
pub struct Busy;

/// A credential to check: the token (wiped when dropped) and the stored PHC hash.
struct Job {
    credential: [u8; 32],
    token: SecretSlice<u8>,
    hash: SecretString,
    replies: Vec<oneshot::Sender<bool>>,
}

#[derive(Default)]
struct Queues {
    /// Set when the owner is dropped: the threads finish what is queued and exit.
    closed: bool,
    by_key: HashMap<[u8; 32], VecDeque<Job>>,
    /// Fair keys with waiting jobs, in turn order.
    turns: VecDeque<[u8; 32]>,
    queued: usize,
    /// Credentials being verified right now, with the replies that joined them.
    running: HashMap<[u8; 32], Vec<oneshot::Sender<bool>>>,
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
    runs: prometheus::IntCounter,
}

/// The argon2 threads and their queues.
#[derive(Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    max_queued: usize,
}

impl Verifier {
    /// Starts `threads` verification threads (at least one). They live as long as the process.
    /// Counts each argon2 run in `runs`.
    pub fn start(threads: usize, runs: prometheus::IntCounter) -> Verifier {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            runs,
        });
        let threads = threads.max(1);
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("roomd-argon2-{i}"))
                .spawn(move || work(&shared))
                .expect("spawning an argon2 thread");
        }
        Verifier {
            shared,
            max_queued: threads * MAX_QUEUED_PER_THREAD,
        }
    }

    /// Whether `token` matches the PHC string `hash`, verified in turn with the other jobs of
    /// `fair_key`. `credential` identifies the (sid, token) pair: equal ones share a result.
    pub async fn verify(
        &self,
        fair_key: [u8; 32],
        credential: [u8; 32],
        token: &str,
        hash: SecretString,
    ) -> Result<bool, Busy> {
        let (tx, rx) = oneshot::channel();
        {
            let mut q = self.lock();
            if let Some(replies) = q.running.get_mut(&credential) {
                replies.push(tx);
            } else if let Some(job) = q
                .by_key
                .get_mut(&fair_key)
                .and_then(|jobs| jobs.iter_mut().find(|j| j.credential == credential))
            {
                job.replies.push(tx);
            } else {
                let waiting = q.by_key.get(&fair_key).map_or(0, VecDeque::len);
                if waiting >= MAX_QUEUED_PER_KEY || q.queued >= self.max_queued {
                    return Err(Busy);
                }
                let job = Job {
                    credential,
                    token: SecretSlice::from(token.as_bytes().to_vec()),
                    hash,
                    replies: vec![tx],
                };
                let jobs = q.by_key.entry(fair_key).or_default();
                jobs.push_back(job);
                if jobs.len() == 1 {
                    q.turns.push_back(fair_key);
                }
                q.queued += 1;
                self.shared.wake.notify_one();
            }
        }
        // A dropped sender (a panic in argon2) is a failed verification.
        Ok(rx.await.unwrap_or(false))
    }

    /// Lets the threads exit once the queues are empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.wake.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        lock(&self.shared)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queues> {
    // Only whole jobs are moved under the lock: a panic cannot leave the queues torn.
    shared.queues.lock().unwrap_or_else(|e| e.into_inner())
}

/// One verification thread: takes the next fair key's oldest job, verifies it with this
/// thread's own memory, answers everyone waiting for that credential.
fn work(shared: &Shared) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let mut q = lock(shared);
            loop {
                if let Some(job) = next_job(&mut q) {
                    q.running.insert(job.credential, Vec::new());
                    break job;
                }
                if q.closed {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        shared.runs.inc();
        let ok = verify_with(
            &mut memory,
            job.token.expose_secret(),
            job.hash.expose_secret(),
        );
        let joined = lock(shared)
            .running
            .remove(&job.credential)
            .unwrap_or_default();
        for reply in job.replies.into_iter().chain(joined) {
            let _ = reply.send(ok);
        }
    }
}

fn next_job(q: &mut Queues) -> Option<Job> {
    let key = q.turns.pop_front()?;
    let jobs = q.by_key.get_mut(&key)?;
    let job = jobs.pop_front()?;
    if jobs.is_empty() {
        q.by_key.remove(&key);
    } else {
        q.turns.push_back(key);
    }
    q.queued -= 1;
    Some(job)
}

/// Verifies `token` against the PHC string `hash` in `memory` (grown to the hash's memory cost
/// once, then reused). A malformed hash, or one asking for more than `MAX_M_COST_KIB`, fails.
pub fn verify_with(memory: &mut Vec<Block>, token: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).ok();
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Some(algorithm), Ok(version)) = (algorithm, version) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(token, salt, out, &mut memory[..blocks])
        .ok()
        // Output's equality is constant-time.
        .and_then(|()| Output::new(out).ok())
        .is_some_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_roomds_own_hashes_in_reused_memory() {
        let hash = crate::auth::credentials::hash_token("0123456789abcdef0123456789abcdef");
        let mut memory = Vec::new();
        assert!(verify_with(
            &mut memory,
            b"0123456789abcdef0123456789abcdef",
            hash.expose_secret()
        ));
        let size = memory.len();
        assert!(size > 0);
        assert!(!verify_with(
            &mut memory,
            b"0123456789abcdef0123456789abcdee",
            hash.expose_secret()
        ));
        assert_eq!(memory.len(), size, "the block is reused, not grown");
        assert!(!verify_with(&mut memory, b"x", "not a hash"));
    }

    #[tokio::test]
    async fn the_queues_are_fair_between_keys_and_bounded() {
        // No threads: nothing is taken from the queues, so what they hold can be inspected.
        let v = Verifier {
            shared: Arc::new(Shared {
                queues: Mutex::new(Queues::default()),
                wake: Condvar::new(),
                runs: prometheus::IntCounter::new("runs", "runs").unwrap(),
            }),
            max_queued: MAX_QUEUED_PER_THREAD,
        };
        let flood = [1u8; 32];
        for i in 0..MAX_QUEUED_PER_KEY as u8 {
            let v = v.clone();
            tokio::spawn(async move { v.verify(flood, [i; 32], "t", "h".into()).await });
        }
        tokio::task::yield_now().await;
        for _ in 0..MAX_QUEUED_PER_KEY {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            v.verify(flood, [200; 32], "t", "h".into()).await,
            Err(Busy)
        ));
        let other = [2u8; 32];
        let v2 = v.clone();
        tokio::spawn(async move { v2.verify(other, [201; 32], "t", "h".into()).await });
        tokio::task::yield_now().await;
        let mut q = v.lock();
        // The other key is served second, not after the flood.
        assert_eq!(next_job(&mut q).unwrap().credential, [0; 32]);
        assert_eq!(next_job(&mut q).unwrap().credential, [201; 32]);
        assert_eq!(next_job(&mut q).unwrap().credential, [1; 32]);
    }
}
