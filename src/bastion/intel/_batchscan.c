/* bastion.intel._batchscan: the per-observable part of ``Matcher.match_many``, compiled.
 *
 * Why C: at 10M indicators a batch of observables spends its time in the interpreter work per
 * observable (grouping by type, lowering, reading addresses, cutting domains into parents, hashing,
 * moving hashes into numpy), not in the lookups, which mostly miss. This module does that work in one
 * pass over the batch and probes the matcher's batch filter (``keyfilter.KeyFilter``) for every key,
 * so that Python code runs only for the keys the filter lets through (the hits and ~0.2% of the rest),
 * for the addresses whose range bucket may hold a range, and for the observables it leaves alone.
 *
 * It decides nothing about a match: the filter only tells which keys are worth a dict lookup, and the
 * matcher's dicts decide (``matcher.Matcher._match_scanned``). It must compute each key exactly as the
 * pure-Python matcher does, and the key's hash exactly as the filter was built (``text_hash``, which
 * ``keyfilter.str_hashes`` takes from here, or ``keyfilter.mix_addresses`` for IPv4 addresses);
 * whatever it cannot read as the common case
 * (non-ASCII text, an address not in dotted-quad form, a URL needing more than a lower-case host) it
 * hands back for the one-by-one Python functions. tests/intel/test_matcher_batches.py holds both
 * paths to the same answers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* What a key is looked up in (the order of ``Matcher._scan_dicts``). */
enum { K_IP = 0, K_HASH = 1, K_URL = 2, K_DOMAIN_EXACT = 3, K_DOMAIN = 4 };
/* What an observable type is read as. */
enum { T_OTHER, T_IP, T_HASH, T_URL, T_DOMAIN };

#define MAX_DOTS 128 /* a name with more dots goes the Python way */

typedef struct {
    Py_ssize_t pos;  /* the observable's position in the batch */
    uint64_t hash;   /* as the filter was built */
    PyObject *src;   /* borrowed: the observable's value, or NULL when the text is in the arena */
    Py_ssize_t off;  /* where the key's text starts in src's data or in the arena */
    Py_ssize_t len;
    int dict;        /* K_* */
} Key;

typedef struct {
    Key *keys;
    Py_ssize_t n, cap;
    char *arena; /* keys that differ from their observable's text (lowered, cut) */
    Py_ssize_t used, room;
} Scan;

static inline uint64_t mix_address(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Keeps the filter's hashes of text unpredictable from outside the process (set from Python's salted
 * ``str`` hash when the module loads). */
static uint64_t hash_seed;

/* The batch filter's hash of a key's text (``keyfilter.str_hashes`` uses it too when this module is
 * there): 8 bytes at a time through a multiply and a shift, then splitmix's finalizer. Not Python's
 * ``str`` hash (SipHash), which cost a quarter of a batch here. A collision only sends a key on to its
 * dict lookup, so resisting chosen collisions is not needed; the seed makes them unpredictable anyway. */
static inline uint64_t text_hash(const char *p, Py_ssize_t n)
{
    uint64_t h = hash_seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, (size_t)n);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    return mix_address(h);
}

static int add_key(Scan *s, Py_ssize_t pos, int dict, uint64_t hash, PyObject *src, Py_ssize_t off,
                   Py_ssize_t len)
{
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 4096;
        Key *keys = PyMem_Realloc(s->keys, (size_t)cap * sizeof(Key));
        if (keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->keys = keys;
        s->cap = cap;
    }
    Key *k = &s->keys[s->n++];
    k->pos = pos;
    k->hash = hash;
    k->src = src;
    k->off = off;
    k->len = len;
    k->dict = dict;
    return 0;
}

/* Room for ``len`` more bytes in the arena; the offset where they go, or -1 (MemoryError set). */
static Py_ssize_t reserve(Scan *s, Py_ssize_t len)
{
    if (s->used + len > s->room) {
        Py_ssize_t room = s->room ? s->room : 1 << 16;
        while (s->used + len > room)
            room *= 2;
        char *arena = PyMem_Realloc(s->arena, (size_t)room);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->arena = arena;
        s->room = room;
    }
    Py_ssize_t off = s->used;
    s->used += len;
    return off;
}

/* Both loops without an early exit, so that the compiler runs them 16 or 32 bytes at a time. */
static inline int has_upper(const char *p, Py_ssize_t n)
{
    unsigned any = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        any |= (unsigned char)(p[i] - 'A') < 26;
    return any != 0;
}

static inline void lower_into(char *out, const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (char)(p[i] + 32 * ((unsigned char)(p[i] - 'A') < 26));
}

static int type_of(const char *t, Py_ssize_t n)
{
    switch (n) {
    case 3:
        if (memcmp(t, "url", 3) == 0)
            return T_URL;
        if (memcmp(t, "md5", 3) == 0)
            return T_HASH;
        break;
    case 4:
        if (memcmp(t, "ipv4", 4) == 0)
            return T_IP;
        if (memcmp(t, "host", 4) == 0)
            return T_DOMAIN;
        if (memcmp(t, "sha1", 4) == 0)
            return T_HASH;
        break;
    case 6:
        if (memcmp(t, "domain", 6) == 0)
            return T_DOMAIN;
        if (memcmp(t, "sha256", 6) == 0)
            return T_HASH;
        break;
    }
    return T_OTHER;
}

/* A dotted quad of four decimal octets without leading zeros: where ``inet_aton`` and the exact text of
 * an address agree. Anything else (``10``, ``0x7f.1``, ``010.0.0.1``, trailing text) goes the Python
 * way, which reads it as ``inet_aton`` does. */
static int read_ipv4(const char *s, Py_ssize_t n, uint32_t *out)
{
    uint32_t addr = 0;
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        Py_ssize_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
            return 0;
        if (i < n && s[i] >= '0' && s[i] <= '9')
            return 0; /* a fourth digit */
        addr = (addr << 8) | v;
    }
    if (i != n)
        return 0;
    *out = addr;
    return 1;
}

static Py_ssize_t find(const char *s, Py_ssize_t n, Py_ssize_t from, char c)
{
    const char *hit = from < n ? memchr(s + from, c, (size_t)(n - from)) : NULL;
    return hit ? hit - s : -1;
}

static int ends_with(const char *s, Py_ssize_t n, const char *tail)
{
    Py_ssize_t m = (Py_ssize_t)strlen(tail);
    return n >= m && memcmp(s + n - m, tail, (size_t)m) == 0;
}

/* ``urlkeys.canonical_url`` for the common case: a scheme, a path, no user-info or escape, and a host
 * without a default port or a trailing dot. The key is the host part lowered and the rest up to any
 * fragment. Returns 0 when the URL goes the Python way. */
static int url_key(Scan *s, Py_ssize_t pos, PyObject *v, const char *p, Py_ssize_t n)
{
    Py_ssize_t i = -1;
    for (Py_ssize_t k = 0; k + 2 < n; k++) {
        if (p[k] == ':' && p[k + 1] == '/' && p[k + 2] == '/') {
            i = k;
            break;
        }
    }
    if (i < 0 || memchr(p, '@', (size_t)n) || memchr(p, '%', (size_t)n))
        return 0;
    Py_ssize_t j = find(p, n, i + 3, '/');
    if (j < 0)
        return 0;
    if (ends_with(p, j, ":80") || ends_with(p, j, ":443") || ends_with(p, j, "."))
        return 0;
    Py_ssize_t cut = find(p, n, j, '#');
    Py_ssize_t len = cut < 0 ? n : cut;
    if (len == n && !has_upper(p, j))
        return add_key(s, pos, K_URL, text_hash(p, n), v, 0, n) < 0 ? -1 : 1;
    Py_ssize_t off = reserve(s, len);
    if (off < 0)
        return -1;
    lower_into(s->arena + off, p, j);
    memcpy(s->arena + off + j, p + j, (size_t)(len - j));
    return add_key(s, pos, K_URL, text_hash(s->arena + off, len), NULL, off, len) < 0 ? -1 : 1;
}

/* ``Matcher._match_domain``'s keys: the name lowered without one trailing dot, for the exact-only
 * domains, then each parent suffix with as many dots as some indexed domain has (``levels``, from the
 * most). Returns 0 when the name goes the Python way. */
static int domain_keys(Scan *s, Py_ssize_t pos, PyObject *v, const char *p, Py_ssize_t n,
                       const int *levels, Py_ssize_t nlevels, int domain_exact)
{
    Py_ssize_t dots[MAX_DOTS];
    Py_ssize_t ndots = 0;
    Py_ssize_t len = (n && p[n - 1] == '.') ? n - 1 : n;
    for (Py_ssize_t k = 0; k < len; k++) {
        if (p[k] == '.') {
            if (ndots == MAX_DOTS)
                return 0;
            dots[ndots++] = k;
        }
    }
    PyObject *src = v;
    Py_ssize_t base = 0;
    if (has_upper(p, len)) {
        base = reserve(s, len);
        if (base < 0)
            return -1;
        lower_into(s->arena + base, p, len);
        src = NULL;
    }
    const char *name = src ? p : s->arena + base;
    if (domain_exact && add_key(s, pos, K_DOMAIN_EXACT, text_hash(name, len), src, base, len) < 0)
        return -1;
    for (Py_ssize_t l = 0; l < nlevels; l++) {
        Py_ssize_t level = levels[l];
        if (level > ndots)
            continue;
        Py_ssize_t start = level == ndots ? 0 : dots[ndots - level - 1] + 1;
        name = src ? p : s->arena + base; /* the arena may have moved */
        if (add_key(s, pos, K_DOMAIN, text_hash(name + start, len - start), src, base + start,
                    len - start) < 0)
            return -1;
    }
    return 1;
}

static PyObject *key_text(const Scan *s, const Key *k)
{
    if (k->src == NULL)
        return PyUnicode_FromStringAndSize(s->arena + k->off, k->len);
    if (k->off == 0 && k->len == PyUnicode_GET_LENGTH(k->src) && PyUnicode_CheckExact(k->src)) {
        Py_INCREF(k->src);
        return k->src;
    }
    return PyUnicode_FromStringAndSize((const char *)PyUnicode_DATA(k->src) + k->off, k->len);
}

static int append_int(PyObject *list, long long value)
{
    PyObject *x = PyLong_FromLongLong(value);
    if (x == NULL)
        return -1;
    int rc = PyList_Append(list, x);
    Py_DECREF(x);
    return rc;
}

static int ascii_str(PyObject *x)
{
    if (!PyUnicode_Check(x))
        return 0;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(x) < 0) {
        PyErr_Clear();
        return 0;
    }
#endif
    return PyUnicode_IS_ASCII(x);
}

PyDoc_STRVAR(scan_doc,
"scan(observables, words, shift, levels, domain_exact, bucket_any, bucket_shift)\n"
"--\n\n"
"Read a batch of (type, value) pairs and probe the batch filter (``words``, ``shift``: a\n"
"KeyFilter's) for each key. Returns (candidates, range_positions, range_addresses, others):\n"
"(position, dict number, key) of each key the filter lets through, in the order the pure-Python\n"
"matcher looks them up; the IPv4 addresses whose bucket in ``bucket_any`` (None: no ranges) may\n"
"hold a range; and the positions of the observables left for the Python functions.");

static PyObject *scan(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *obs, *words_obj, *levels_obj, *bucket_obj;
    int shift, domain_exact, bucket_shift;
    if (!PyArg_ParseTuple(args, "O!OiO!pOi", &PyList_Type, &obs, &words_obj, &shift, &PyTuple_Type,
                          &levels_obj, &domain_exact, &bucket_obj, &bucket_shift))
        return NULL;
    if (shift < 1 || shift > 63 || bucket_shift < 0 || bucket_shift > 31) {
        PyErr_SetString(PyExc_ValueError, "shift out of range");
        return NULL;
    }
    Py_buffer words = {0}, buckets = {0};
    int have_buckets = bucket_obj != Py_None;
    Scan s = {0};
    int *levels = NULL;
    PyObject *cands = NULL, *rpos = NULL, *raddr = NULL, *others = NULL, *result = NULL;

    if (PyObject_GetBuffer(words_obj, &words, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t nwords = words.len / 8;
    if (words.len % 8 || (uint64_t)nwords != (UINT64_C(1) << (64 - shift))) {
        PyErr_SetString(PyExc_ValueError, "the filter's words do not match its shift");
        goto done;
    }
    if (have_buckets) {
        if (PyObject_GetBuffer(bucket_obj, &buckets, PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        if (buckets.len < ((Py_ssize_t)1 << (32 - bucket_shift))) {
            PyErr_SetString(PyExc_ValueError, "bucket_any is shorter than the buckets");
            goto done;
        }
    }
    Py_ssize_t nlevels = PyTuple_GET_SIZE(levels_obj);
    levels = PyMem_Malloc(sizeof(int) * (size_t)(nlevels ? nlevels : 1));
    if (levels == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t l = 0; l < nlevels; l++) {
        long level = PyLong_AsLong(PyTuple_GET_ITEM(levels_obj, l));
        if (level == -1 && PyErr_Occurred())
            goto done;
        levels[l] = (int)level;
    }
    if ((cands = PyList_New(0)) == NULL || (rpos = PyList_New(0)) == NULL ||
        (raddr = PyList_New(0)) == NULL || (others = PyList_New(0)) == NULL)
        goto done;

    const uint64_t *w = (const uint64_t *)words.buf;
    const unsigned char *bucket_any = (const unsigned char *)buckets.buf;
    Py_ssize_t n = PyList_GET_SIZE(obs);
    for (Py_ssize_t pos = 0; pos < n; pos++) {
        PyObject *item = PyList_GET_ITEM(obs, pos);
        int read = 0;
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            PyObject *t = PyTuple_GET_ITEM(item, 0), *v = PyTuple_GET_ITEM(item, 1);
            if (ascii_str(t) && ascii_str(v)) {
                const char *p = (const char *)PyUnicode_DATA(v);
                Py_ssize_t len = PyUnicode_GET_LENGTH(v);
                Py_ssize_t first = s.n;
                switch (type_of((const char *)PyUnicode_DATA(t), PyUnicode_GET_LENGTH(t))) {
                case T_IP: {
                    uint32_t addr;
                    if (!read_ipv4(p, len, &addr))
                        break;
                    read = 1;
                    if (add_key(&s, pos, K_IP, mix_address(addr), v, 0, len) < 0)
                        goto done;
                    if (have_buckets && bucket_any[addr >> bucket_shift]) {
                        if (append_int(rpos, pos) < 0 || append_int(raddr, addr) < 0)
                            goto done;
                    }
                    break;
                }
                case T_HASH:
                    read = 1;
                    if (!has_upper(p, len)) {
                        if (add_key(&s, pos, K_HASH, text_hash(p, len), v, 0, len) < 0)
                            goto done;
                    } else {
                        Py_ssize_t off = reserve(&s, len);
                        if (off < 0)
                            goto done;
                        lower_into(s.arena + off, p, len);
                        if (add_key(&s, pos, K_HASH, text_hash(s.arena + off, len), NULL, off, len) < 0)
                            goto done;
                    }
                    break;
                case T_URL:
                    read = url_key(&s, pos, v, p, len);
                    if (read < 0)
                        goto done;
                    break;
                case T_DOMAIN:
                    read = domain_keys(&s, pos, v, p, len, levels, nlevels, domain_exact);
                    if (read < 0)
                        goto done;
                    break;
                default:
                    break;
                }
                /* Start the loads of this observable's filter words: the second pass finds them in
                 * cache, and the CPU overlaps the misses of many observables. */
                for (Py_ssize_t k = first; k < s.n; k++)
                    __builtin_prefetch(&w[s.keys[k].hash >> shift]);
            }
        }
        if (!read && append_int(others, pos) < 0)
            goto done;
    }
    for (Py_ssize_t k = 0; k < s.n; k++) {
        const Key *key = &s.keys[k];
        uint64_t h = key->hash, word = w[h >> shift];
        if (!((word >> (h & 63)) & (word >> ((h >> 6) & 63)) & 1))
            continue;
        PyObject *text = key_text(&s, key);
        if (text == NULL)
            goto done;
        PyObject *cand = Py_BuildValue("(niN)", key->pos, key->dict, text);
        if (cand == NULL || PyList_Append(cands, cand) < 0) {
            Py_XDECREF(cand);
            goto done;
        }
        Py_DECREF(cand);
    }
    result = PyTuple_Pack(4, cands, rpos, raddr, others);
done:
    Py_XDECREF(cands);
    Py_XDECREF(rpos);
    Py_XDECREF(raddr);
    Py_XDECREF(others);
    PyMem_Free(levels);
    PyMem_Free(s.keys);
    PyMem_Free(s.arena);
    if (have_buckets && buckets.obj != NULL)
        PyBuffer_Release(&buckets);
    PyBuffer_Release(&words);
    return result;
}

PyDoc_STRVAR(key_hashes_doc,
"key_hashes(keys, out)\n"
"--\n\n"
"Write the filter's hash of each str in ``keys`` into ``out`` (int64, one per key): what ``scan``\n"
"probes with, for building and probing the filter outside a scan.");

static PyObject *key_hashes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *keys, *out_obj;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &keys, &out_obj))
        return NULL;
    Py_buffer out;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (out.len != n * (Py_ssize_t)sizeof(uint64_t)) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "out must hold one int64 per key");
        return NULL;
    }
    uint64_t *h = (uint64_t *)out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_Check(key)) {
            PyBuffer_Release(&out);
            PyErr_Format(PyExc_TypeError, "keys must be str, not %.100s", Py_TYPE(key)->tp_name);
            return NULL;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(key) < 0) {
            PyBuffer_Release(&out);
            return NULL;
        }
#endif
        int kind = PyUnicode_KIND(key);
        uint64_t x = text_hash((const char *)PyUnicode_DATA(key), PyUnicode_GET_LENGTH(key) * kind);
        h[i] = kind == 1 ? x : x ^ (uint64_t)kind; /* the same text is always of the same kind */
    }
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"key_hashes", key_hashes, METH_VARARGS, key_hashes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bastion.intel._batchscan",
    "The per-observable part of the intel matcher's batches, compiled (see the source's header).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__batchscan(void)
{
    PyObject *salt = PyUnicode_FromString("bastion.intel._batchscan");
    if (salt == NULL)
        return NULL;
    Py_hash_t seed = PyObject_Hash(salt);
    Py_DECREF(salt);
    if (seed == -1 && PyErr_Occurred())
        return NULL;
    hash_seed = mix_address((uint64_t)seed);
    return PyModule_Create(&module);
}
