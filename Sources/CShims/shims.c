// The SHA256_* functions are deprecated in OpenSSL 3.0 in favour of EVP, but they are the same
// implementation (SHA-NI where the CPU has it) without EVP's per-call dispatch and allocation,
// which costs more than hashing a 250-byte ledger entry.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "CShims.h"

#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

void prov_sha256(const void *data, size_t len, uint8_t out[32]) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

void prov_sha256_prefixed(uint8_t prefix, const void *data, size_t len, uint8_t out[32]) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &prefix, 1);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

void prov_sha256_node(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]) {
    uint8_t buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, left, 32);
    memcpy(buf + 33, right, 32);
    // Not SHA256(): in OpenSSL 3 the one-shot call fetches an EVP implementation every time.
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, buf, sizeof buf);
    SHA256_Final(out, &ctx);
}

void prov_sha256_leaves(const uint8_t *const *starts, const size_t *lengths, size_t count, uint8_t *out) {
    for (size_t i = 0; i < count; i++) {
        prov_sha256_prefixed(0x00, starts[i], lengths[i], out + 32 * i);
    }
}

void prov_hmac_sha256_init(prov_hmac_sha256_key *key, const void *secret, size_t len) {
    uint8_t block[64];
    memset(block, 0, sizeof block);
    if (len > sizeof block) {
        prov_sha256(secret, len, block);
    } else if (len > 0) {
        memcpy(block, secret, len);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&key->inner);
    SHA256_Update(&key->inner, pad, sizeof pad);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&key->outer);
    SHA256_Update(&key->outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

void prov_hmac_sha256(const prov_hmac_sha256_key *key, const void *data, size_t len, uint8_t out[32]) {
    SHA256_CTX ctx = key->inner;
    uint8_t inner[32];
    SHA256_Update(&ctx, data, len);
    SHA256_Final(inner, &ctx);
    ctx = key->outer;
    SHA256_Update(&ctx, inner, sizeof inner);
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
}

static uint32_t crc32c_table[8][256];
static int crc32c_table_ready;

static void crc32c_init_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc32c_table[0][c & 0xff] ^ (c >> 8);
            crc32c_table[k][n] = c;
        }
    }
    __atomic_store_n(&crc32c_table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc32c_software(uint32_t crc, const uint8_t *p, size_t len) {
    if (!__atomic_load_n(&crc32c_table_ready, __ATOMIC_ACQUIRE)) crc32c_init_table();
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = crc32c_table[7][v & 0xff] ^ crc32c_table[6][(v >> 8) & 0xff] ^ crc32c_table[5][(v >> 16) & 0xff] ^
              crc32c_table[4][(v >> 24) & 0xff] ^ crc32c_table[3][(v >> 32) & 0xff] ^
              crc32c_table[2][(v >> 40) & 0xff] ^ crc32c_table[1][(v >> 48) & 0xff] ^ crc32c_table[0][v >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hardware(uint32_t crc, const uint8_t *p, size_t len) {
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t prov_crc32c(uint32_t crc, const void *data, size_t len) {
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hardware(crc, data, len);
#endif
    return ~crc32c_software(crc, data, len);
}

void prov_openssl_free(void *ptr) { OPENSSL_free(ptr); }

static int prov_stop_pipe[2] = {-1, -1};

static void prov_on_stop(int sig) {
    int saved = errno;
    char b = sig == SIGHUP ? 'H' : 'T';
    ssize_t ignored = write(prov_stop_pipe[1], &b, 1);
    (void)ignored;
    errno = saved;
}

int prov_stop_signals_install(void) {
    if (prov_stop_pipe[0] < 0) {
        if (pipe(prov_stop_pipe) != 0) return -1;
        for (int i = 0; i < 2; i++) {
            fcntl(prov_stop_pipe[i], F_SETFD, FD_CLOEXEC);
            fcntl(prov_stop_pipe[i], F_SETFL, O_NONBLOCK);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = prov_on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    // A parent may have started us with them blocked (the mask survives exec).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    return prov_stop_pipe[0];
}

int prov_hangup_signal_install(void) {
    int fd = prov_stop_signals_install();
    if (fd < 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = prov_on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    return fd;
}
