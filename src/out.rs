//! Standard output that survives a closed pipe. `quantfarm status | head -1` closes
//! the pipe after one line; Rust's `println!` would then panic. Here a closed pipe
//! ends the process quietly with the shell's code for "killed by SIGPIPE" (141), so
//! a pipeline neither prints a panic nor reports success for output nobody read.

use std::io::Write;

/// Write one line to stdout (the body of [`outln!`]).
pub fn line(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

/// `println!` that exits quietly on a closed pipe instead of panicking.
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
