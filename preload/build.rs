//! Compiles `src/varargs.c` (the `execl` family, which takes C varargs).

fn main() {
    println!("cargo:rerun-if-changed=src/varargs.c");
    cc::Build::new().file("src/varargs.c").warnings(true).extra_warnings(true).compile("sluice_varargs");
}
