//! `execl`, `execlp`, `execle`: C-variadic, so implemented in C
//! (`src/varargs.c`, which gathers the arguments and calls our `execv`,
//! `execvp`, `execve`). A cdylib exports only Rust-defined symbols, so the
//! exported names are naked Rust functions that jump to the C code with the
//! caller's registers and stack untouched.

extern "C" {
    fn sluice_execl();
    fn sluice_execlp();
    fn sluice_execle();
}

macro_rules! jump_to {
    ($(#[$doc:meta])* $name:ident => $target:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As the C function of the same name.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {}", sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {}", sym $target);
        }
    };
}

jump_to!(
    /// `int execl(const char *path, const char *arg, ... /*, NULL */)`.
    execl => sluice_execl
);
jump_to!(
    /// `int execlp(const char *file, const char *arg, ... /*, NULL */)`.
    execlp => sluice_execlp
);
jump_to!(
    /// `int execle(const char *path, const char *arg, ... /*, NULL, char *const envp[] */)`.
    execle => sluice_execle
);
