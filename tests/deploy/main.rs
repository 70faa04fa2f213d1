//! `make deploy-test`: the production recipe in `deploy/`, run for real on
//! this machine. Each test builds its own stack — a throwaway PostgreSQL
//! database and roles made by `deploy/postgres/setup.sql`, migrated by
//! `keyward migrate` as the owner role; two `keyward serve` processes as
//! the app role with `deploy/keyward.env`; nginx with the shipped site and
//! a certificate made for the run — and drives it through `https://` as
//! users and operators would: a real HTTP client, and Chromium.
//!
//! It needs nginx, openssl, psql, systemd-analyze and a PostgreSQL superuser
//! in `KEYWARD_TEST_POSTGRES_URL`; `make deploy-test` installs nginx. Plain
//! `cargo test` leaves it out (`test = false` in Cargo.toml): it starts
//! processes, takes ports and creates database roles.

mod browser;
mod gate;
mod load;
mod outage;
mod recipe;
mod restart;
mod stack;
mod traffic;
