//! The `hubsync` binary.

fn main() {
    println!("hubsync");
}
