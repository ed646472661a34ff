// The migrations are embedded at compile time: rebuild when one changes or is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
