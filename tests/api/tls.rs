//! TLS to PostgreSQL: a real PostgreSQL with `ssl=on` on loopback TCP, its certificate signed by a
//! CA this test makes. roomd (the binary, from `DATABASE_URL`) connects with
//! `sslmode=verify-full`, and refuses a server whose certificate its CA did not sign.

use crate::cli::{serve, signal, wait};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use roomd::db::embedded::{give_to_server_user, EmbeddedPostgres};
use sqlx::{Connection, Row};
use std::path::Path;
use std::process::Command;

/// A CA, and a server certificate for `localhost` it signed (PEM).
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let (ca_cert, ca_key) = ca("roomd test CA");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let server = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_pem: server.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

fn write(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL with `ssl=on` on `127.0.0.1:port`, serving `pki`'s certificate; the CA file's
/// path (and a wrong CA's) for clients.
struct TlsPostgres {
    _pg: EmbeddedPostgres,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsPostgres {
    fn start() -> TlsPostgres {
        let pki = pki();
        let dir =
            std::env::temp_dir().join(format!("roomd-tls-{}", roomd::domain::sid::random_hex32()));
        std::fs::create_dir(&dir).unwrap();
        write(&dir.join("ca.pem"), &pki.ca_pem, 0o644);
        write(&dir.join("other-ca.pem"), &ca("another CA").0.pem(), 0o644);
        write(&dir.join("server.pem"), &pki.server_pem, 0o644);
        // PostgreSQL reads its key only when no one else may.
        write(&dir.join("server.key"), &pki.server_key_pem, 0o600);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["server.pem", "server.key"] {
            give_to_server_user(&dir.join(f)).unwrap();
        }
        let port = free_port();
        let cert = dir.join("server.pem").display().to_string();
        let key = dir.join("server.key").display().to_string();
        let pg = EmbeddedPostgres::start_on_tcp(
            port,
            &[
                ("ssl", "on"),
                ("ssl_cert_file", &cert),
                ("ssl_key_file", &key),
            ],
        )
        .expect("PostgreSQL with ssl=on");
        TlsPostgres { _pg: pg, port, dir }
    }

    fn url(&self, sslmode: &str, ca: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={sslmode}&sslrootcert={}",
            self.port,
            self.dir.join(ca).display()
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the connection at `url` is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, sqlx::Error> {
    let options = roomd::app::setting_values::parse_database_url(url).unwrap();
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let ssl: bool = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await?
        .get(0);
    conn.close().await?;
    Ok(ssl)
}

#[tokio::test]
async fn roomd_reaches_postgresql_over_tls_with_sslmode_verify_full() {
    let pg = tokio::task::spawn_blocking(TlsPostgres::start)
        .await
        .unwrap();

    for sslmode in ["verify-full", "verify-ca", "require", "prefer"] {
        assert!(
            encrypted(&pg.url(sslmode, "ca.pem")).await.unwrap(),
            "{sslmode}: the connection is encrypted"
        );
    }
    // A server whose certificate the given CA did not sign is refused when verifying, and
    // taken (encrypted) when the client only asks for encryption.
    for sslmode in ["verify-full", "verify-ca"] {
        let refused = encrypted(&pg.url(sslmode, "other-ca.pem")).await;
        let error = refused.expect_err(sslmode).to_string();
        assert!(error.contains("UnknownIssuer"), "{sslmode}: {error}");
    }
    assert!(encrypted(&pg.url("require", "other-ca.pem")).await.unwrap());

    // The binary, as an operator runs it: migrate, then serve, over verify-full.
    let url = pg.url("verify-full", "ca.pem");
    let migrate = Command::new(env!("CARGO_BIN_EXE_roomd"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("ROOMD_MASTER_KEY", crate::cli::TEST_MASTER_KEY)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let served = serve(vec![("DATABASE_URL", url.clone())]).await;
    let health = reqwest::get(format!("{}/healthz", served.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Every connection of roomd's is encrypted.
    let mut admin = sqlx::PgConnection::connect_with(
        &roomd::app::setting_values::parse_database_url(&url).unwrap(),
    )
    .await
    .unwrap();
    let (roomd_connections, plaintext): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.client_addr IS NOT NULL AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(roomd_connections > 0);
    assert_eq!(plaintext, 0);
    admin.close().await.unwrap();
    signal(&served.child, libc::SIGTERM);
    assert!(wait(served.child).await.success());
}
