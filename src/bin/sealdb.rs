//! The `sealdb` command-line tool.

fn main() {
    eprintln!("sealdb: the command-line tool is not built yet");
    std::process::exit(2);
}
