/*
 * argvbomb: the item-7 attack of issue 11, as any unprivileged workload can
 * mount it. Pid 1 starts N children (default 8); each re-executes this
 * program with ~5.9 MB of command line (46 arguments of 128 KiB, the kernel's
 * per-argument maximum) and then overwrites that whole argv area with NUL
 * bytes, as setproctitle-style code may: a reader splitting the area at NULs
 * sees about six million empty arguments per process. Pid 1 prints
 * "ready argvbomb N" once every child holds its area, then sleeps.
 *
 *   argvbomb [N]        (pid 1 in the container)
 *   argvbomb hold ARGS  (a child; not for people)
 *
 * Built statically (gcc -O2 -static) and run FROM scratch; see
 * tests/doubles/argvbomb.py.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARG_BYTES (128 * 1024 - 1) /* MAX_ARG_STRLEN is 32 pages, NUL included */
#define ARGS 46                    /* 46 x 128 KiB = 5.9 MB */

static int hold(int argc, char **argv) {
    /* the area runs from argv[0] to the end of the last argument */
    char *start = argv[2];
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    memset(start, 0, (size_t)(end - start));
    int ready_fd = atoi(argv[1]);
    if (write(ready_fd, "r", 1) != 1)
        return 1;
    close(ready_fd);
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[0], "hold") == 0)
        return hold(argc, argv);
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (n < 1 || n > 64)
        n = 8;
    /* the kernel accepts argv + envp up to a quarter of the stack limit */
    struct rlimit stack = {256L << 20, 256L << 20};
    if (setrlimit(RLIMIT_STACK, &stack) != 0) {
        getrlimit(RLIMIT_STACK, &stack);
        stack.rlim_cur = stack.rlim_max;
        setrlimit(RLIMIT_STACK, &stack);
    }
    static char payload[ARG_BYTES + 1];
    memset(payload, 'A', ARG_BYTES);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    char fd_text[16];
    snprintf(fd_text, sizeof fd_text, "%d", fds[1]);
    char *child_argv[ARGS + 3];
    child_argv[0] = "hold";
    child_argv[1] = fd_text;
    for (int i = 0; i < ARGS; i++)
        child_argv[2 + i] = payload;
    child_argv[ARGS + 2] = NULL;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            execv("/proc/self/exe", child_argv);
            perror("execv");
            _exit(127);
        }
    }
    close(fds[1]);
    char c;
    int got = 0;
    while (got < n && read(fds[0], &c, 1) == 1)
        got++;
    close(fds[0]);
    if (got < n) {
        fprintf(stderr, "argvbomb: only %d of %d children started\n", got, n);
        return 1;
    }
    printf("ready argvbomb %d\n", n);
    fflush(stdout);
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0) /* reap, as an init must */
            ;
        pause();
    }
}
