/* The execl family takes its arguments as C varargs, which stable Rust cannot
 * receive. These collect them into an argv array and call execv/execve/execvp,
 * which the preload interposes, so the exec preparation (hooks/process.rs)
 * runs for them too. glibc's own execl calls its internal execve, past our
 * hooks, which is why they are re-implemented here.
 *
 * The exported `execl`, `execlp` and `execle` are naked Rust functions that
 * jump here (hooks/exec_varargs.rs): a cdylib exports only Rust-defined
 * symbols, so these C definitions stay local to the preload. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

int sluice_execl(const char *path, const char *arg, ...);
int sluice_execlp(const char *file, const char *arg, ...);
int sluice_execle(const char *path, const char *arg, ...);

/* POSIX's ARG_MAX bounds argv; glibc uses the same limit here. */
#define SLUICE_ARGV_MAX 131072

/* Counts the arguments after `first` up to and including the NULL. */
static size_t count_args(const char *first, va_list ap) {
    size_t n = 1;
    if (first == NULL) return n;
    while (va_arg(ap, const char *) != NULL) n++;
    return n + 1;
}

#define COLLECT(first, last_named, extra)                                  \
    va_list ap;                                                            \
    va_start(ap, last_named);                                              \
    size_t argc = count_args(first, ap);                                   \
    va_end(ap);                                                            \
    if (argc > SLUICE_ARGV_MAX) {                                          \
        errno = E2BIG;                                                     \
        return -1;                                                         \
    }                                                                      \
    const char *argv[argc];                                                \
    argv[0] = first;                                                       \
    va_start(ap, last_named);                                              \
    for (size_t i = 1; i < argc; i++) argv[i] = va_arg(ap, const char *); \
    extra;                                                                 \
    va_end(ap);

int sluice_execl(const char *path, const char *arg, ...) {
    COLLECT(arg, arg, (void)0)
    return execv(path, (char *const *)argv);
}

int sluice_execlp(const char *file, const char *arg, ...) {
    COLLECT(arg, arg, (void)0)
    return execvp(file, (char *const *)argv);
}

int sluice_execle(const char *path, const char *arg, ...) {
    char *const *envp;
    COLLECT(arg, arg, envp = va_arg(ap, char *const *))
    return execve(path, (char *const *)argv, envp);
}
