//! `sqlx::migrate!` embeds the migrations at compile time; without this a
//! new migration file would not reach the binary until some source changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
