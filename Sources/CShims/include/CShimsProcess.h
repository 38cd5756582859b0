#ifndef CSHIMS_PROCESS_H
#define CSHIMS_PROCESS_H

#include <sys/types.h>

/// What a child's standard descriptor is: a descriptor of ours dup2'd onto it, or one of these.
#define PROV_SPAWN_NULL (-1)
#define PROV_SPAWN_INHERIT (-2)

/// Starts `path` with posix_spawn: `fds[0..2]` become the child's standard input, output and error (a descriptor,
/// PROV_SPAWN_NULL for /dev/null, PROV_SPAWN_INHERIT for ours); every other descriptor is closed in the child
/// (closefrom, no scan of /proc); the child starts in `dir` when it is not NULL, with no signal blocked and every
/// signal at its default action (a parent that ignores SIGPIPE or blocks SIGTERM passes neither on).
/// Returns 0 and the pid, or an errno value.
int prov_spawn(const char *path, char *const argv[], char *const envp[], const char *dir, const int fds[3],
               pid_t *pid);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no child inherits unless it is given one.
int prov_pipe_cloexec(int fds[2]);

/// Waits until `pid` has ended without reaping it (waitid with WNOWAIT): the pid stays reserved until
/// prov_reap. Returns 0, or an errno value.
int prov_wait_exit(pid_t pid);

/// Reaps `pid` (after prov_wait_exit) and returns its raw wait status, or -1.
int prov_reap(pid_t pid);

#endif
