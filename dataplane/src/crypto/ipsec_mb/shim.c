/*
 * The C side of the ipsec-mb engine: plain functions over intel-ipsec-mb's job API, which is
 * mostly macros. Rust prepares one `gw_mb_keys` per SA (round keys, and the job fields every
 * packet of the SA sets the same way) and hands whole bursts of `gw_mb_job` descriptors, each
 * naming its SA's keys, to `gw_mb_burst`, which submits all of them before flushing: one
 * submission serves every SA of a burst.
 *
 * Everything the Rust side must agree on is marked ABI below; `gw_mb_keys_size` and
 * `gw_mb_keys_align` let it check the layout at engine creation.
 */

/* The library is built with LINUX defined, which aligns `struct gcm_key_data` to 64 bytes. */
#ifndef LINUX
#define LINUX
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <intel-ipsec-mb.h>

/* ABI: cipher codes, in the order of Rust's `Cipher`. */
enum {
        GW_C_NULL = 0,
        GW_C_DES = 1,
        GW_C_3DES = 2,
        GW_C_AES128 = 3,
        GW_C_AES192 = 4,
        GW_C_AES256 = 5,
        GW_C_GCM128 = 6,
        GW_C_GCM256 = 7,
};

/* ABI: integrity codes, in the order of Rust's `Auth`. */
enum {
        GW_A_NULL = 0,
        GW_A_MD5 = 1,
        GW_A_SHA1 = 2,
        GW_A_SHA256 = 3,
};

/* ABI: job status written back by `gw_mb_burst`. */
enum {
        GW_ST_OK = 0,
        GW_ST_ERROR = 1,
        GW_ST_PENDING = 2,
};

#define GW_GCM_KEY_BYTES 1024
#define GW_HMAC_BLOCK 64

/*
 * The job fields every packet of one SA sets the same way, chosen once when the SA is prepared,
 * so the per-packet loop has no branch on the algorithm. Points into its own `gw_mb_keys`.
 */
struct gw_mb_sa {
        const void *enc_keys;
        const void *dec_keys;
        const void *ipad;
        const void *opad;
        const void *des3[3];
        uint64_t key_len;
        uint64_t iv_len;
        uint32_t mode;     /* IMB_CIPHER_MODE */
        uint32_t hash;     /* IMB_HASH_ALG */
        uint32_t tag_len;
        uint32_t second;   /* 1: the job goes to the burst's second manager (see gw_mb_burst) */
};

/*
 * ABI: one SA's prepared key material. Every member is a multiple of 64 bytes so the layout has
 * no padding; Rust only holds it as 64-byte-aligned bytes of this size, at a fixed heap address
 * (the template points into it).
 */
struct gw_mb_keys {
        _Alignas(64) union {
                struct gcm_key_data k;
                uint8_t raw[GW_GCM_KEY_BYTES];
        } gcm;
        _Alignas(64) uint8_t enc[256];      /* AES encryption round keys (up to 15 x 16) */
        _Alignas(64) uint8_t dec[256];      /* AES decryption round keys */
        _Alignas(64) uint64_t des[3][16];   /* DES key schedules (K1, K2, K3) */
        _Alignas(64) uint8_t ipad[64];      /* hash state after (key ^ ipad) */
        _Alignas(64) uint8_t opad[64];      /* hash state after (key ^ opad) */
        _Alignas(64) union {
                struct gw_mb_sa s;
                uint8_t raw[128];
        } sa;
};

_Static_assert(sizeof(struct gcm_key_data) <= GW_GCM_KEY_BYTES, "gcm_key_data grew");
_Static_assert(sizeof(struct gw_mb_sa) <= 128, "gw_mb_sa grew");
_Static_assert(sizeof(struct gw_mb_keys) == 2176, "gw_mb_keys layout changed");
_Static_assert(_Alignof(struct gw_mb_keys) == 64, "gw_mb_keys alignment changed");

/* ABI: one packet's work. */
struct gw_mb_job {
        const struct gw_mb_keys *keys; /* its SA's, prepared by gw_mb_prepare */
        uint8_t *buf;          /* packet start */
        const uint8_t *iv;     /* CBC: block-size IV; GCM: 12-byte nonce */
        const uint8_t *aad;    /* GCM additional authenticated data */
        uint8_t *tag;          /* ICV output, tag_len bytes */
        uint32_t cipher_off;
        uint32_t cipher_len;
        uint32_t hash_off;
        uint32_t hash_len;
        uint16_t aad_len;
        uint8_t gcm;           /* 0, or 1 for AES-128-GCM, 2 for AES-256-GCM (the session chose it) */
        uint8_t tag_len;       /* GCM: the ICV's length */
        uint32_t status;       /* out: GW_ST_* */
};

size_t gw_mb_keys_size(void) { return sizeof(struct gw_mb_keys); }

size_t gw_mb_keys_align(void) { return _Alignof(struct gw_mb_keys); }

size_t gw_mb_job_size(void) { return sizeof(struct gw_mb_job); }

/* Wipes `len` bytes in a way the compiler may not elide. */
static void gw_wipe(void *p, size_t len)
{
        volatile uint8_t *v = p;
        while (len--)
                *v++ = 0;
}

/* Returns an initialised manager for the best architecture of this CPU, or NULL. */
IMB_MGR *gw_mb_new(void)
{
        IMB_MGR *m = alloc_mb_mgr(0);
        IMB_ARCH arch = IMB_ARCH_NONE;

        if (m == NULL)
                return NULL;
        init_mb_mgr_auto(m, &arch);
        if (arch == IMB_ARCH_NONE || imb_get_errno(m) != 0) {
                free_mb_mgr(m);
                return NULL;
        }
        return m;
}

/*
 * Returns an initialised SSE manager, or NULL. Its HMAC-SHA-1 and HMAC-SHA-256 use the SHA
 * extensions when the CPU has them, one packet at a time; the AVX2 manager hashes eight packets
 * in parallel lanes without them, which measured slower on AMD EPYC (see MbEngine).
 */
IMB_MGR *gw_mb_new_sse(void)
{
        IMB_MGR *m = alloc_mb_mgr(0);

        if (m == NULL)
                return NULL;
        init_mb_mgr_sse(m);
        if (imb_get_errno(m) != 0) {
                free_mb_mgr(m);
                return NULL;
        }
        return m;
}

/* Returns 1 when the manager found the SHA extensions on this CPU. */
int gw_mb_has_shani(const IMB_MGR *m) { return (m->features & IMB_FEATURE_SHANI) != 0; }

void gw_mb_free(IMB_MGR *m)
{
        if (m != NULL)
                free_mb_mgr(m);
}

/* Returns the architecture the manager dispatches to (IMB_ARCH_*). */
uint32_t gw_mb_arch(const IMB_MGR *m) { return (uint32_t)m->used_arch; }

/*
 * Returns 1 when the manager's AES-GCM keeps 48 hash key powers (the VAES code of the AVX-512
 * manager: the powers short messages read are at the end of the key block), 0 when it keeps 8
 * after the round keys. Asked of the library's own precompute rather than of the CPU flags,
 * which the library weighs by rules of its own: the wide layout is the only one that writes
 * the key block's last powers.
 */
int gw_mb_gcm_wide(IMB_MGR *m)
{
        static const uint8_t key[16] = { 1 };
        struct gcm_key_data k;
        const uint8_t *raw = (const uint8_t *)&k;
        int wide = 0;
        size_t i;

        memset(&k, 0, sizeof(k));
        IMB_AES128_GCM_PRE(m, key, &k);
        for (i = 960; i < 1008 && i < sizeof(k); i++)
                wide |= raw[i] != 0;
        gw_wipe(&k, sizeof(k));
        return wide;
}

static size_t gw_cipher_key_len(uint32_t cipher)
{
        switch (cipher) {
        case GW_C_NULL: return 0;
        case GW_C_DES: return 8;
        case GW_C_3DES: return 24;
        case GW_C_AES128: return 16;
        case GW_C_AES192: return 24;
        case GW_C_AES256: return 32;
        case GW_C_GCM128: return 16 + 4; /* key and RFC 4106 salt */
        case GW_C_GCM256: return 32 + 4;
        default: return SIZE_MAX;
        }
}

static size_t gw_auth_key_len(uint32_t auth)
{
        switch (auth) {
        case GW_A_NULL: return 0;
        case GW_A_MD5: return 16;
        case GW_A_SHA1: return 20;
        case GW_A_SHA256: return 32;
        default: return SIZE_MAX;
        }
}

/* Computes the hash state after one block of `key` XOR `pad` (RFC 2104). */
static void gw_hmac_pad(IMB_MGR *m, uint32_t auth, const uint8_t *key, size_t key_len, uint8_t pad,
                        uint8_t *state)
{
        uint8_t block[GW_HMAC_BLOCK];
        size_t i;

        memset(block, pad, sizeof(block));
        for (i = 0; i < key_len; i++)
                block[i] ^= key[i];
        switch (auth) {
        case GW_A_MD5: IMB_MD5_ONE_BLOCK(m, block, state); break;
        case GW_A_SHA1: IMB_SHA1_ONE_BLOCK(m, block, state); break;
        case GW_A_SHA256: IMB_SHA256_ONE_BLOCK(m, block, state); break;
        default: break;
        }
        gw_wipe(block, sizeof(block));
}

/*
 * Prepares `k` for one SA: AES round keys, GCM hash keys, DES schedules, HMAC pad states.
 * Returns 0, or -1 when a code or key length is wrong (Rust checks them first).
 */
static void gw_template(struct gw_mb_keys *k, uint32_t cipher, uint32_t auth, uint32_t tag_len);

int gw_mb_prepare(IMB_MGR *m, struct gw_mb_keys *k, uint32_t cipher, const uint8_t *ekey, size_t ekey_len,
                  uint32_t auth, const uint8_t *akey, size_t akey_len, uint32_t tag_len, uint32_t second)
{
        int rc = 0;

        if (gw_cipher_key_len(cipher) != ekey_len || gw_auth_key_len(auth) != akey_len)
                return -1;
        gw_wipe(k, sizeof(*k));
        switch (cipher) {
        case GW_C_DES:
                rc |= IMB_DES_KEYSCHED(m, k->des[0], ekey);
                break;
        case GW_C_3DES:
                rc |= IMB_DES_KEYSCHED(m, k->des[0], ekey);
                rc |= IMB_DES_KEYSCHED(m, k->des[1], ekey + 8);
                rc |= IMB_DES_KEYSCHED(m, k->des[2], ekey + 16);
                break;
        case GW_C_AES128: IMB_AES_KEYEXP_128(m, ekey, k->enc, k->dec); break;
        case GW_C_AES192: IMB_AES_KEYEXP_192(m, ekey, k->enc, k->dec); break;
        case GW_C_AES256: IMB_AES_KEYEXP_256(m, ekey, k->enc, k->dec); break;
        case GW_C_GCM128: IMB_AES128_GCM_PRE(m, ekey, &k->gcm.k); break;
        case GW_C_GCM256: IMB_AES256_GCM_PRE(m, ekey, &k->gcm.k); break;
        default: break;
        }
        if (auth != GW_A_NULL) {
                gw_hmac_pad(m, auth, akey, akey_len, 0x36, k->ipad);
                gw_hmac_pad(m, auth, akey, akey_len, 0x5c, k->opad);
        }
        if (rc != 0) {
                gw_wipe(k, sizeof(*k));
                return -1;
        }
        gw_template(k, cipher, auth, tag_len);
        k->sa.s.second = second != 0;
        return 0;
}

static void gw_complete(const IMB_JOB *j)
{
        struct gw_mb_job *d = j->user_data;

        d->status = j->status == IMB_STATUS_COMPLETED ? GW_ST_OK : GW_ST_ERROR;
}

/*
 * Chooses the job fields of one SA's packets. GCM SAs have none: their jobs call the library's
 * direct function from the descriptor alone (gw_mb_burst).
 */
static void gw_template(struct gw_mb_keys *k, uint32_t cipher, uint32_t auth, uint32_t tag_len)
{
        struct gw_mb_sa *t = &k->sa.s;

        t->mode = IMB_CIPHER_NULL;
        t->hash = IMB_AUTH_NULL;
        t->des3[0] = k->des[0];
        t->des3[1] = k->des[1];
        t->des3[2] = k->des[2];
        switch (cipher) {
        case GW_C_DES: t->mode = IMB_CIPHER_DES; t->enc_keys = k->des[0]; t->key_len = 8; t->iv_len = 8; break;
        case GW_C_3DES: t->mode = IMB_CIPHER_DES3; t->enc_keys = t->des3; t->key_len = 24; t->iv_len = 8; break;
        case GW_C_AES128: t->mode = IMB_CIPHER_CBC; t->enc_keys = k->enc; t->dec_keys = k->dec; t->key_len = 16; t->iv_len = 16; break;
        case GW_C_AES192: t->mode = IMB_CIPHER_CBC; t->enc_keys = k->enc; t->dec_keys = k->dec; t->key_len = 24; t->iv_len = 16; break;
        case GW_C_AES256: t->mode = IMB_CIPHER_CBC; t->enc_keys = k->enc; t->dec_keys = k->dec; t->key_len = 32; t->iv_len = 16; break;
        default: break;
        }
        switch (auth) {
        case GW_A_MD5: t->hash = IMB_AUTH_MD5; break;
        case GW_A_SHA1: t->hash = IMB_AUTH_HMAC_SHA_1; break;
        case GW_A_SHA256: t->hash = IMB_AUTH_HMAC_SHA_256; break;
        default: break;
        }
        if (t->dec_keys == NULL)
                t->dec_keys = t->enc_keys; /* DES and 3DES use one schedule both ways */
        t->ipad = k->ipad;
        t->opad = k->opad;
        t->tag_len = t->hash == IMB_AUTH_NULL ? 0 : tag_len;
}

/* One AES-GCM job (its `gcm` 1 or 2) on the library's direct function. */
static inline void gw_gcm(IMB_MGR *m, int encrypt, struct gw_mb_job *d)
{
        struct gcm_context_data ctx;
        uint8_t *p = d->buf + d->cipher_off;

        if (d->gcm == 1)
                (encrypt ? m->gcm128_enc : m->gcm128_dec)(&d->keys->gcm.k, &ctx, p, p, d->cipher_len, d->iv, d->aad,
                                                          d->aad_len, d->tag, d->tag_len);
        else if (d->gcm == 2)
                (encrypt ? m->gcm256_enc : m->gcm256_dec)(&d->keys->gcm.k, &ctx, p, p, d->cipher_len, d->iv, d->aad,
                                                          d->aad_len, d->tag, d->tag_len);
        else {
                d->status = GW_ST_ERROR;
                return;
        }
        d->status = GW_ST_OK;
}

/* One AES-GCM job at once, for callers that interleave their own per-packet work with the
 * library's. */
void gw_mb_gcm_one(IMB_MGR *m, int encrypt, struct gw_mb_job *d)
{
        gw_gcm(m, encrypt, d);
}

/*
 * Seals (encrypt != 0) or opens n jobs, each with its own SA's keys: submits every job, then
 * flushes, writing each descriptor's status. Jobs whose keys were prepared with `second` go to
 * manager `m2` (which may be `m`), and so does every AES-CBC and HMAC-only job when `aes_to_m2`;
 * the others and GCM to `m`. Key schedules and HMAC pad states are the same for every
 * architecture. Opening computes the ICV into `tag`; the caller compares. At most IMB_MAX_JOBS
 * jobs per call. The Rust side checked every region against its packet, so the library's own
 * checks are skipped.
 *
 * Sealing, an AES-CBC + HMAC job of m2's keys with at least `split_from` bytes to encrypt (0:
 * none) goes as two: its AES-CBC on m, then its HMAC on m2. m2 is then the SSE manager, chosen
 * for its SHA extensions, whose AES-CBC has four lanes where the AVX managers' have eight:
 * CBC encryption chains each packet's blocks, so long packets wait on the AES latency in four.
 *
 * GCM runs one packet at a time in the library whatever the API, so GCM jobs call its direct
 * functions (RFC 4106 nonces are 12 bytes, which they take) and skip the job manager; other
 * jobs share the multi-buffer lanes.
 */
void gw_mb_burst(IMB_MGR *m, IMB_MGR *m2, int aes_to_m2, uint32_t split_from, int encrypt, struct gw_mb_job *jobs,
                 uint32_t n)
{
        IMB_MGR *const mgrs[2] = { m, m2 };
        const IMB_CIPHER_DIRECTION dir = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
        const IMB_CHAIN_ORDER order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
        IMB_JOB *j;
        uint32_t i;
        /* Jobs split by split_from: their HMAC, after every cipher job of `m` is done. */
        uint32_t later[IMB_MAX_JOBS];
        uint32_t nl = 0;

        /* A whole burst in one submission: lanes are flushed once per burst, not per part of
         * it. When a job held in a lane keeps the library's queue full behind it, the library
         * completes that job itself on the next submission. */
        if (n > IMB_MAX_JOBS)
                n = IMB_MAX_JOBS;

        for (i = 0; i < n; i++) {
                struct gw_mb_job *d = &jobs[i];
                const struct gw_mb_sa *t;

                if (d->gcm) {
                        gw_gcm(m, encrypt, d);
                        continue;
                }
                t = &d->keys->sa.s;
                /* aes_to_m2: AES-CBC and HMAC-only jobs go to m2 whatever their keys' flag;
                 * DES stays on m, whose DES the caller chose. */
                IMB_MGR *mm = mgrs[t->second | (aes_to_m2 && t->mode != IMB_CIPHER_DES && t->mode != IMB_CIPHER_DES3)];
                const int split = split_from != 0 && d->cipher_len >= split_from && encrypt && t->second &&
                                  m2 != m && t->mode == IMB_CIPHER_CBC && t->hash != IMB_AUTH_NULL &&
                                  d->hash_len != 0;
                if (split) {
                        mm = m;
                        later[nl++] = i;
                }

                d->status = GW_ST_PENDING;
                j = IMB_GET_NEXT_JOB(mm);
                j->cipher_direction = dir;
                j->chain_order = order;
                j->src = d->buf;
                j->dst = d->buf + d->cipher_off;
                j->cipher_start_src_offset_in_bytes = d->cipher_off;
                j->msg_len_to_cipher_in_bytes = d->cipher_len;
                j->iv = d->iv;
                j->iv_len_in_bytes = t->iv_len;
                j->enc_keys = t->enc_keys;
                j->dec_keys = t->dec_keys;
                j->key_len_in_bytes = t->key_len;
                j->cipher_mode = (IMB_CIPHER_MODE)t->mode;
                j->hash_alg = (IMB_HASH_ALG)t->hash;
                j->auth_tag_output = d->tag;
                j->auth_tag_output_len_in_bytes = t->tag_len;
                /* GCM jobs never get here: they called the library's direct function above. */
                j->hash_start_src_offset_in_bytes = d->hash_off;
                j->msg_len_to_hash_in_bytes = d->hash_len;
                j->u.HMAC._hashed_auth_key_xor_ipad = t->ipad;
                j->u.HMAC._hashed_auth_key_xor_opad = t->opad;
                if (d->cipher_len == 0) {
                        /* Nothing to cipher: the library refuses empty CBC jobs. */
                        j->cipher_mode = IMB_CIPHER_NULL;
                }
                if (split || t->hash == IMB_AUTH_NULL || d->hash_len == 0) {
                        /* The library refuses empty HMAC jobs: Rust supplies that ICV. A split
                         * job's HMAC comes after the loop. */
                        j->hash_alg = IMB_AUTH_NULL;
                        j->auth_tag_output = NULL;
                        j->auth_tag_output_len_in_bytes = 0;
                        j->msg_len_to_hash_in_bytes = 0;
                }
                j->user_data = d;
                j->user_data2 = NULL;

                j = IMB_SUBMIT_JOB_NOCHECK(mm);
                while (j != NULL) {
                        gw_complete(j);
                        j = IMB_GET_COMPLETED_JOB(mm);
                }
        }
        while ((j = IMB_FLUSH_JOB(m)) != NULL)
                gw_complete(j);
        for (uint32_t k = 0; k < nl; k++) {
                struct gw_mb_job *d = &jobs[later[k]];
                const struct gw_mb_sa *t = &d->keys->sa.s;
                if (d->status != GW_ST_OK)
                        continue;
                d->status = GW_ST_PENDING;
                j = IMB_GET_NEXT_JOB(m2);
                j->cipher_direction = dir;
                j->chain_order = IMB_ORDER_CIPHER_HASH;
                j->cipher_mode = IMB_CIPHER_NULL;
                j->src = d->buf;
                j->dst = d->buf + d->cipher_off;
                j->cipher_start_src_offset_in_bytes = d->cipher_off;
                j->msg_len_to_cipher_in_bytes = 0;
                j->hash_alg = (IMB_HASH_ALG)t->hash;
                j->auth_tag_output = d->tag;
                j->auth_tag_output_len_in_bytes = t->tag_len;
                j->hash_start_src_offset_in_bytes = d->hash_off;
                j->msg_len_to_hash_in_bytes = d->hash_len;
                j->u.HMAC._hashed_auth_key_xor_ipad = t->ipad;
                j->u.HMAC._hashed_auth_key_xor_opad = t->opad;
                j->user_data = d;
                j->user_data2 = NULL;
                j = IMB_SUBMIT_JOB_NOCHECK(m2);
                while (j != NULL) {
                        gw_complete(j);
                        j = IMB_GET_COMPLETED_JOB(m2);
                }
        }
        if (m2 != m) {
                while ((j = IMB_FLUSH_JOB(m2)) != NULL)
                        gw_complete(j);
        }
}

