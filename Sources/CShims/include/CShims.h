#ifndef PROV_CSHIMS_H
#define PROV_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/sha.h>

/// SHA-256 over one buffer, without the per-call context allocation of EVP_Digest.
void prov_sha256(const void *data, size_t len, uint8_t out[32]);

/// SHA-256(prefix || data): RFC 9162 §2.1.1 leaf hash when prefix is 0x00.
void prov_sha256_prefixed(uint8_t prefix, const void *data, size_t len, uint8_t out[32]);

/// SHA-256(0x01 || left || right): RFC 9162 §2.1.1 interior node hash.
void prov_sha256_node(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]);

/// Leaf hashes of `count` consecutive buffers: `starts[i]` and `lengths[i]` describe buffer i.
void prov_sha256_leaves(const uint8_t *const *starts, const size_t *lengths, size_t count, uint8_t *out);

/// HMAC-SHA256 key schedule (RFC 2104) with the inner and outer pads already absorbed, so each MAC costs two
/// short hashes instead of four.
typedef struct {
    SHA256_CTX inner;
    SHA256_CTX outer;
} prov_hmac_sha256_key;

void prov_hmac_sha256_init(prov_hmac_sha256_key *key, const void *secret, size_t len);
void prov_hmac_sha256(const prov_hmac_sha256_key *key, const void *data, size_t len, uint8_t out[32]);

/// CRC-32C (Castagnoli), as used by iSCSI and ext4: SSE 4.2 instruction when the CPU has it, table otherwise.
uint32_t prov_crc32c(uint32_t crc, const void *data, size_t len);

/// OPENSSL_free is a macro.
void prov_openssl_free(void *ptr);

/// Makes SIGTERM and SIGINT write one byte to a pipe (the self-pipe trick, safe whichever thread takes the
/// signal) and returns the pipe's read end to poll beside the input; -1 if the pipe cannot be made.
int prov_stop_signals_install(void);

/// As prov_stop_signals_install, and SIGHUP too: the pipe then carries 'T' for SIGTERM/SIGINT, 'H' for SIGHUP.
int prov_hangup_signal_install(void);

// Sockets, epoll and TLS shims for ProvNet.
#include "CShimsNet.h"

// posix_spawn and waiting for children, for ProvProcess.
#include "CShimsProcess.h"

#endif
