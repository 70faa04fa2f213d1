//! The shipped files themselves: the systemd unit passes systemd's own
//! check, and the database roles are as narrow as the README says.

use std::process::Command;

use crate::stack::Database;

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/keyward@.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/opt/keyward/keyward serve"));
    // systemd checks that the program exists: point it at this build.
    let unit = unit.replace("/opt/keyward/keyward", env!("CARGO_BIN_EXE_keyward"));
    let dir = std::env::temp_dir().join(format!("keyward-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keyward@3001.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[tokio::test]
async fn the_app_role_uses_the_tables_but_cannot_change_them_or_the_books() {
    let database = Database::create("roles");
    database.migrate();
    let app = sqlx::PgPool::connect(&database.app_url(database.server.port()))
        .await
        .unwrap();
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(users, 0);
    sqlx::query("DELETE FROM sessions")
        .execute(&app)
        .await
        .unwrap();
    for ddl in [
        "DROP TABLE usage_ledger",
        "ALTER TABLE users ADD COLUMN sneaky TEXT",
        "CREATE TABLE sneaky (id BIGINT)",
        "TRUNCATE usage_ledger",
        // The books are appended to, never rewritten (after-migrate.sql).
        "DELETE FROM usage_ledger",
        "UPDATE usage_ledger SET cost_micro_usd = 0",
        "DELETE FROM audit_log",
        "DELETE FROM _sqlx_migrations",
    ] {
        let refused = sqlx::query(ddl).execute(&app).await.unwrap_err();
        let code = refused
            .as_database_error()
            .and_then(|err| err.code())
            .unwrap_or_default();
        // 42501 insufficient_privilege; dropping or altering another
        // role's table is refused as "must be owner" (also 42501).
        assert_eq!(code, "42501", "{ddl}: {refused}");
    }
    app.close().await;
}
