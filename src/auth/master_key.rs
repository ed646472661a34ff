//! Secrets roomd must be able to recover, not only verify: API key secrets (to check the
//! signatures of Access Tokens) and auth tokens (to sign status callbacks). They are sealed with
//! XChaCha20-Poly1305 under the master key, with the owning row's SID as associated data, so a
//! sealed value copied to another row does not open. The argon2 hashes stay for Basic auth.
//!
//! The master key comes from `ROOMD_MASTER_KEY` (base64 of 32 bytes), else from the file named by
//! `ROOMD_MASTER_KEY_FILE`, else from `master.key` under the data directory, which is created
//! (mode 0600) on first use. Replicas must share one key.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first byte of every sealed value: the format (XChaCha20-Poly1305, 24-byte nonce first).
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
/// The file the master key is kept in under the data directory when no setting names one.
pub const KEY_FILE_NAME: &str = "master.key";

/// The 32-byte master key. It never prints (`Debug` is redacted) and is wiped when dropped.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Where the master key comes from, as configured.
pub enum KeySource {
    /// `ROOMD_MASTER_KEY`: the key itself, base64.
    Value(SecretString),
    /// `ROOMD_MASTER_KEY_FILE`: a file holding it, base64.
    File(PathBuf),
    /// Neither: `master.key` under this data directory, created on first use.
    DataDir(PathBuf),
}

/// A sealed value that does not open: sealed under another master key, for another row, or
/// damaged. Which one cannot be told apart, by design.
#[derive(Debug, PartialEq, Eq)]
pub struct DoesNotOpen;

impl MasterKey {
    /// A fresh random key (from the OS CSPRNG).
    pub fn generate() -> MasterKey {
        let mut key = Box::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        MasterKey(SecretBox::new(key))
    }

    /// Parses base64 of exactly 32 bytes. The error names `what` and never repeats the value.
    pub fn from_base64(what: &str, encoded: &str) -> Result<MasterKey> {
        let bytes = SecretSlice::from(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| anyhow!("invalid {what}: not base64"))?,
        );
        let key: [u8; 32] = bytes
            .expose_secret()
            .try_into()
            .map_err(|_| anyhow!("invalid {what}: must be base64 of exactly 32 bytes"))?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// The key as base64, for writing the key file (and for an operator to copy to replicas).
    fn to_base64(&self) -> SecretString {
        base64::engine::general_purpose::STANDARD
            .encode(self.0.expose_secret())
            .into()
    }

    /// Loads the key from `source`; for `DataDir`, creates the key file if it does not exist.
    pub fn load(source: &KeySource) -> Result<MasterKey> {
        match source {
            KeySource::Value(v) => MasterKey::from_base64("ROOMD_MASTER_KEY", v.expose_secret()),
            KeySource::File(path) => read_key_file(path, "ROOMD_MASTER_KEY_FILE"),
            KeySource::DataDir(dir) => {
                let path = dir.join(KEY_FILE_NAME);
                if !path.exists() {
                    create_key_file(dir, &path)?;
                }
                read_key_file(&path, "the master key file")
            }
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }

    /// `secret` sealed for the row `sid`: version, random nonce, ciphertext and tag.
    pub fn seal(&self, sid: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: sid.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// A 32-byte key for `purpose`, derived from this one (HMAC-SHA256 as the PRF), so that
    /// other secrets can be recomputed by every replica instead of stored.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The secret sealed for the row `sid`, if it was sealed under this key for that row.
    pub fn open(&self, sid: &str, sealed: &[u8]) -> Result<SecretSlice<u8>, DoesNotOpen> {
        let [VERSION, rest @ ..] = sealed else {
            return Err(DoesNotOpen);
        };
        if rest.len() < NONCE_BYTES {
            return Err(DoesNotOpen);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: sid.as_bytes(),
                },
            )
            .map(SecretSlice::from)
            .map_err(|_| DoesNotOpen)
    }
}

fn read_key_file(path: &Path, what: &str) -> Result<MasterKey> {
    let text = SecretString::from(
        fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))?,
    );
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; make it mode 0600");
        }
    }
    MasterKey::from_base64(&format!("{what} {}", path.display()), text.expose_secret())
}

/// Writes a new key to `path` (mode 0600) without ever exposing a half-written file: the key
/// goes to a private temporary file first, which is then linked into place. If another process
/// created the file meanwhile, its key wins and this one is discarded.
fn create_key_file(dir: &Path, path: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temp = dir.join(format!(
        ".{KEY_FILE_NAME}.{}.{}",
        std::process::id(),
        &crate::domain::sid::random_hex32()[..8]
    ));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        f.write_all(MasterKey::generate().to_base64().expose_secret().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        match fs::hard_link(&temp, path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a master key; replicas must share it");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => bail!("creating {}: {e}", path.display()),
        }
    })();
    let _ = fs::remove_file(&temp);
    result
}

impl MasterKey {
    /// Checks that this is the key this database's secrets are sealed under, recording it on
    /// first use. A different key is an error that names the settings, never the key.
    pub async fn check(&self, pool: &sqlx::PgPool) -> Result<()> {
        const CHECK_SID: &str = "master_key_check";
        let sealed =
            crate::db::api_keys::master_key_check(pool, self.seal(CHECK_SID, b"roomd")).await?;
        if self.open(CHECK_SID, &sealed).is_err() {
            bail!(
                "the master key (ROOMD_MASTER_KEY, ROOMD_MASTER_KEY_FILE, or master.key in ROOMD_DATA_DIR) \
                 is not the one this database's secrets are sealed with; every replica must use the same key"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "roomd-seal-{}",
            &crate::domain::sid::random_hex32()[..8]
        ));
        fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn a_sealed_secret_opens_only_under_its_key_for_its_row() {
        let key = MasterKey::generate();
        let sid = "SK0123456789abcdef0123456789abcdef";
        let sealed = key.seal(sid, b"the secret");
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(
            key.open(sid, &sealed).unwrap().expose_secret(),
            b"the secret"
        );
        // Each seal has its own nonce.
        assert_ne!(key.seal(sid, b"the secret"), sealed);

        let other_row = "SK0123456789abcdef0123456789abcdee";
        assert_eq!(key.open(other_row, &sealed).unwrap_err(), DoesNotOpen);
        assert_eq!(
            MasterKey::generate().open(sid, &sealed).unwrap_err(),
            DoesNotOpen
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(sid, &tampered).unwrap_err(), DoesNotOpen);
        for short in [&[][..], &[VERSION][..], &sealed[..10], &[2u8; 60][..]] {
            assert_eq!(key.open(sid, short).unwrap_err(), DoesNotOpen);
        }
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_and_never_print() {
        let key = MasterKey::generate();
        let encoded = key.to_base64();
        let again = MasterKey::from_base64("K", encoded.expose_secret()).unwrap();
        let sealed = key.seal("x", b"s");
        assert!(again.open("x", &sealed).is_ok());
        assert!(!format!("{again:?}").contains(encoded.expose_secret()));

        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        for bad in ["not base64!", short.as_str(), ""] {
            let e = MasterKey::from_base64("ROOMD_MASTER_KEY", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("invalid ROOMD_MASTER_KEY"), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
    }

    #[test]
    fn without_a_setting_the_key_file_is_created_once_private_and_reused() {
        let dir = temp_dir();
        let source = KeySource::DataDir(dir.join("data"));
        let first = MasterKey::load(&source).unwrap();
        let path = dir.join("data").join(KEY_FILE_NAME);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = MasterKey::load(&source).unwrap();
        assert!(second.open("x", &first.seal("x", b"s")).is_ok());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.join("data")).unwrap().count(), 1);

        let by_file = MasterKey::load(&KeySource::File(path.clone())).unwrap();
        assert!(by_file.open("x", &first.seal("x", b"s")).is_ok());
        let missing = MasterKey::load(&KeySource::File(dir.join("nope"))).unwrap_err();
        assert!(
            format!("{missing:#}").contains("ROOMD_MASTER_KEY_FILE"),
            "{missing:#}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn processes_starting_together_agree_on_one_key() {
        let dir = temp_dir();
        let keys: Vec<MasterKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| MasterKey::load(&KeySource::DataDir(dir.clone())).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sealed = keys[0].seal("x", b"s");
        assert!(keys.iter().all(|k| k.open("x", &sealed).is_ok()));
        let _ = fs::remove_dir_all(&dir);
    }
}
