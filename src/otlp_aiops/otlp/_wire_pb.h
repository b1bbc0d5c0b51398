/*
 * _wire_pb.h: the protobuf reading and attribute helpers shared by _wire.c (spans and log records)
 * and _wire_metrics.c (metric points): wire reading (varints, tags, fixed64/32, length-delimited
 * fields, skipping unknown fields and groups, merging repeated message fields), strict UTF-8 checks,
 * growable arrays, the interned strings and module-init checks, the per-record error state (Ctx),
 * string and id conversion, AnyValue rendering, the attribute key cache and key index, and
 * KeyValue reading.
 *
 * Every function is `static`: each extension gets its own copy (and its own key cache), so the two
 * modules stay independent at run time; only the source is shared. Include it first (it includes
 * <Python.h>, with PY_SSIZE_T_CLEAN), once per extension.
 */
#ifndef OTLP_AIOPS_WIRE_PB_H
#define OTLP_AIOPS_WIRE_PB_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define INT64_MAX_U ((uint64_t)INT64_MAX)

/* ---------------------------------------------------------------------------------------------- */
/* reading */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Rd;

static inline int rd_varint(Rd *r, uint64_t *out) {
    /* one and two bytes first (tags and most lengths), inline; then the general loop */
    if (r->end - r->p >= 2) {
        uint8_t b0 = r->p[0];
        if (!(b0 & 0x80)) {
            *out = b0;
            r->p++;
            return 0;
        }
        uint8_t b1 = r->p[1];
        if (!(b1 & 0x80)) {
            *out = (uint64_t)(b0 & 0x7F) | (uint64_t)b1 << 7;
            r->p += 2;
            return 0;
        }
    }
    uint64_t v = 0;
    int shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
        shift += 7;
        if (shift >= 70) return -1;
    }
    return -1;
}

/* A field's tag: field numbers run from 1 to 2^29 - 1; anything else is malformed, as for upb. */
static int rd_tag(Rd *r, uint64_t *key) {
    if (rd_varint(r, key) < 0) return -1;
    uint64_t f = *key >> 3;
    return f == 0 || f > 536870911 ? -1 : 0;
}

/* The next field's number and wire type (a tag, as rd_tag reads it). inline: not every includer uses it. */
static inline int rd_field(Rd *r, int *f, int *wt) {
    uint64_t key;
    if (rd_tag(r, &key) < 0) return -1;
    *f = (int)(key >> 3);
    *wt = (int)(key & 7);
    return 0;
}

static int rd_fixed64(Rd *r, uint64_t *out) {
    if (r->end - r->p < 8) return -1;
    uint64_t v;
    memcpy(&v, r->p, 8); /* little-endian hosts only: checked at module init */
    r->p += 8;
    *out = v;
    return 0;
}

static int rd_fixed32(Rd *r, uint32_t *out) {
    if (r->end - r->p < 4) return -1;
    uint32_t v;
    memcpy(&v, r->p, 4);
    r->p += 4;
    *out = v;
    return 0;
}

static int rd_bytes(Rd *r, const uint8_t **start, Py_ssize_t *len) {
    uint64_t n;
    if (rd_varint(r, &n) < 0) return -1;
    if (n > (uint64_t)(r->end - r->p)) return -1;
    *start = r->p;
    *len = (Py_ssize_t)n;
    r->p += n;
    return 0;
}

/* Strict UTF-8, as upb and Python check it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const uint8_t *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            while (i + 8 <= n) { /* ASCII runs, eight bytes at a time */
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL) break;
                i += 8;
            }
            continue;
        }
        int len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n) return 0;
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

/* A string field: an earlier occurrence it replaces must still have been valid UTF-8 (upb checks
 * every occurrence, and the last one is checked when it is decoded). */
static int rd_str(Rd *r, const uint8_t **p, Py_ssize_t *n) {
    const uint8_t *old = *p;
    Py_ssize_t oldn = *n;
    if (rd_bytes(r, p, n) < 0) return -1;
    return old && !utf8_valid(old, oldn) ? -1 : 0;
}

static int skip_depth(Rd *r, int f, int wt, int depth);

/* A group (wire type 3, long deprecated but still valid protobuf): its fields up to the matching
 * end-group tag. upb keeps it as one unknown field; so do we. */
static int skip_group(Rd *r, int f, int depth) {
    if (depth > 100) return -1;
    while (r->p < r->end) {
        uint64_t key;
        if (rd_tag(r, &key) < 0) return -1;
        int f2 = (int)(key >> 3), w2 = (int)(key & 7);
        if (w2 == 4) return f2 == f ? 0 : -1;
        if (skip_depth(r, f2, w2, depth + 1) < 0) return -1;
    }
    return -1;
}

static int skip_depth(Rd *r, int f, int wt, int depth) {
    uint64_t v;
    uint32_t v32;
    const uint8_t *s;
    Py_ssize_t n;
    switch (wt) {
    case 0: return rd_varint(r, &v);
    case 1: return rd_fixed64(r, &v);
    case 2: return rd_bytes(r, &s, &n);
    case 3: return skip_group(r, f, depth);
    case 5: return rd_fixed32(r, &v32);
    default: return -1; /* an end-group with no group open, or no wire type at all */
    }
}

/* Skip the value of field f with wire type wt. */
static int skip_field(Rd *r, int f, int wt) { return skip_depth(r, f, wt, 0); }

/* Whether p[0:n] is a sequence of whole fields. Repeated occurrences of a message field merge, but
 * each must be well-formed on its own: concatenating them could hide a field cut at the end of one. */
static int wire_ok(const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0 || skip_field(&r, (int)(key >> 3), (int)(key & 7)) < 0) return 0;
    }
    return 1;
}

/* Another occurrence s[0:sn] of a singular message field whose first occurrence was first[0:firstn]
 * (nprev occurrences so far): repeated occurrences merge, so *merged (NULL until the second) becomes
 * their concatenation. Each must be well-formed on its own (wire_ok). 0; -1 malformed (*merged kept,
 * for the caller to release); -2 on a Python error (*merged released). */
static int merge_occurrence(PyObject **merged, int nprev, const uint8_t *first, Py_ssize_t firstn, const uint8_t *s,
                            Py_ssize_t sn) {
    if ((nprev == 1 && !wire_ok(first, firstn)) || !wire_ok(s, sn)) return -1;
    if (!*merged && !(*merged = PyBytes_FromStringAndSize((const char *)first, firstn))) return -2;
    PyObject *more = PyBytes_FromStringAndSize((const char *)s, sn);
    if (!more) {
        Py_CLEAR(*merged);
        return -2;
    }
    PyBytes_ConcatAndDel(merged, more);
    return *merged ? 0 : -2;
}

/* ---------------------------------------------------------------------------------------------- */
/* growable arrays */

/* Make room for `need` items of `item` bytes in *p (capacity *cap): the capacity doubles, from
 * `first`. -1 with MemoryError set if out of memory. */
static int grow(void **p, Py_ssize_t *cap, Py_ssize_t need, size_t item, Py_ssize_t first) {
    if (need <= *cap) return 0;
    Py_ssize_t nc = *cap ? *cap : first;
    while (nc < need) nc *= 2;
    void *q = PyMem_Realloc(*p, (size_t)nc * item);
    if (!q) {
        PyErr_NoMemory();
        return -1;
    }
    *p = q;
    *cap = nc;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* per-record state and conversions */

static PyObject *S_string, *S_bool, *S_int, *S_double, *S_empty, *S_true, *S_false, *S_nan, *S_inf, *S_ninf,
    *S_empty_str;

/* Module init, shared part: refuse a big-endian host (fixed64 and fixed32 are read with memcpy) and
 * make the interned strings above. -1 with an exception set on failure. */
static int pb_init(const char *module) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_Format(PyExc_ImportError, "%s supports little-endian hosts only", module);
        return -1;
    }
    S_string = PyUnicode_InternFromString("string");
    S_bool = PyUnicode_InternFromString("bool");
    S_int = PyUnicode_InternFromString("int");
    S_double = PyUnicode_InternFromString("double");
    S_empty = PyUnicode_InternFromString("empty");
    S_true = PyUnicode_InternFromString("true");
    S_false = PyUnicode_InternFromString("false");
    S_nan = PyUnicode_InternFromString("NaN");
    S_inf = PyUnicode_InternFromString("Infinity");
    S_ninf = PyUnicode_InternFromString("-Infinity");
    S_empty_str = PyUnicode_InternFromString("");
    if (!S_string || !S_bool || !S_int || !S_double || !S_empty || !S_true || !S_false || !S_nan || !S_inf ||
        !S_ninf || !S_empty_str)
        return -1;
    return 0;
}

typedef struct {
    PyObject *fallback; /* callable(bytes) -> (tag, text): composite AnyValues */
    PyObject *unknown;  /* dict "Message.#field" -> count */
    PyObject *pending;  /* unknown-field keys of the current record, added to `unknown` once it parses */
    /* the current record's error, if any */
    const char *err_code;
    PyObject *err_msg;
} Ctx;

/* A record error: remember code and message, return -1. A Python error: return -2. */
static int rec_err(Ctx *c, const char *code, PyObject *msg) {
    if (msg == NULL) return -2;
    Py_XDECREF(c->err_msg);
    c->err_code = code;
    c->err_msg = msg;
    return -1;
}

static int malformed(Ctx *c, const char *what) {
    return rec_err(c, "invalid_protobuf", PyUnicode_FromFormat("malformed protobuf in %s", what));
}

static int count_unknown(Ctx *c, const char *msg, uint64_t field) {
    PyObject *key = PyUnicode_FromFormat("%s.#%llu", msg, (unsigned long long)field);
    if (!key) return -2;
    int rc = PyList_Append(c->pending, key);
    Py_DECREF(key);
    return rc < 0 ? -2 : 0;
}

/* Move the pending unknown-field keys into the counts (keep) or drop them: a record whose bytes
 * are malformed has no fields to speak of, as with upb, which rejects it whole. */
static int flush_unknown(Ctx *c, int keep) {
    Py_ssize_t n = PyList_GET_SIZE(c->pending);
    for (Py_ssize_t i = 0; keep && i < n; i++) {
        PyObject *key = PyList_GET_ITEM(c->pending, i);
        PyObject *cur = PyDict_GetItemWithError(c->unknown, key);
        if (!cur && PyErr_Occurred()) return -2;
        PyObject *nv = PyLong_FromLong(cur ? PyLong_AsLong(cur) + 1 : 1);
        if (!nv) return -2;
        int rc = PyDict_SetItem(c->unknown, key, nv);
        Py_DECREF(nv);
        if (rc < 0) return -2;
    }
    return n ? PyList_SetSlice(c->pending, 0, n, NULL) < 0 ? -2 : 0 : 0;
}

/* str from UTF-8 bytes; a record error if invalid. */
static int utf8(Ctx *c, const uint8_t *p, Py_ssize_t n, const char *what, PyObject **out) {
    if (n == 0) {
        Py_INCREF(S_empty_str);
        *out = S_empty_str;
        return 0;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    if (s) {
        *out = s;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return -2;
    PyErr_Clear(); /* proto3 strings must be UTF-8: upb rejects such a message as malformed too */
    return rec_err(c, "invalid_protobuf", PyUnicode_FromFormat("%s is not valid UTF-8", what));
}

/* optional string: "" -> None */
static int opt_utf8(Ctx *c, const uint8_t *p, Py_ssize_t n, const char *what, PyObject **out) {
    if (n == 0) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    return utf8(c, p, n, what, out);
}

static int id_bytes(Ctx *c, const uint8_t *p, Py_ssize_t n, Py_ssize_t want, const char *what, PyObject **out) {
    if (n == 0) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    if (n != want) {
        PyObject *hex = PyBytes_FromStringAndSize((const char *)p, n);
        if (!hex) return -2;
        PyObject *h = PyObject_CallMethod(hex, "hex", NULL);
        Py_DECREF(hex);
        if (!h) return -2;
        int rc = rec_err(c, "invalid_id", PyUnicode_FromFormat("%s has %zd bytes, not %zd (hex %U)", what, n, want, h));
        Py_DECREF(h);
        return rc;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i]) {
            *out = PyBytes_FromStringAndSize((const char *)p, n);
            return *out ? 0 : -2;
        }
    }
    Py_INCREF(Py_None); /* all-zero id */
    *out = Py_None;
    return 0;
}

static int check_time(Ctx *c, uint64_t t, const char *what) {
    if (t > INT64_MAX_U)
        return rec_err(c, "timestamp_out_of_range",
                       PyUnicode_FromFormat("%s %llu is beyond 2262 in nanoseconds", what, (unsigned long long)t));
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* AnyValue and KeyValue */

/* repr() of a finite double, as Python writes it ("1.0", "1e+100"): a new str, NULL on error. */
static PyObject *double_text(double d) {
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return NULL;
    PyObject *text = PyUnicode_FromString(s);
    PyMem_Free(s);
    return text;
}

/* Render an AnyValue (the concatenation of its occurrences) as (tag, text), new references. */
static int render_any(Ctx *c, const uint8_t *p, Py_ssize_t n, int merged, PyObject **tag, PyObject **text) {
    Rd r = {p, p + n};
    Py_ssize_t pending0 = PyList_GET_SIZE(c->pending); /* the fallback recounts this value's unknown fields */
    int which = 0; /* field number of the last oneof member seen */
    const uint8_t *sp = NULL;
    Py_ssize_t sn = 0;
    uint64_t iv = 0;
    int has_composite = merged;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return malformed(c, "an attribute value");
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 2) {
            if (rd_str(&r, &sp, &sn) < 0) return malformed(c, "an attribute value");
            which = 1;
        } else if ((f == 2 || f == 3) && wt == 0) {
            if (rd_varint(&r, &iv) < 0) return malformed(c, "an attribute value");
            which = f;
        } else if (f == 4 && wt == 1) {
            if (rd_fixed64(&r, &iv) < 0) return malformed(c, "an attribute value");
            which = 4;
        } else if ((f >= 5 && f <= 7 && wt == 2) || (f == 8 && wt == 0)) {
            if (skip_field(&r, f, wt) < 0) return malformed(c, "an attribute value");
            which = f;
            if (f == 5 || f == 6) has_composite = 1; /* merges with earlier composites: let upb decide */
        } else {
            if (skip_field(&r, f, wt) < 0) return malformed(c, "an attribute value");
            int rc = count_unknown(c, "AnyValue", (uint64_t)f);
            if (rc < 0) return rc;
        }
    }
    if (sp && which != 1 && !utf8_valid(sp, sn)) return malformed(c, "an attribute value");
    if (has_composite || which >= 5) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)p, n);
        if (!b) return -2;
        PyObject *res = PyObject_CallOneArg(c->fallback, b);
        Py_DECREF(b);
        if (!res) {
            if (PyErr_ExceptionMatches(PyExc_ValueError)) { /* DecodeError is a ValueError */
                PyErr_Clear();
                return malformed(c, "an attribute value");
            }
            return -2;
        }
        if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3 || !PyList_Check(PyTuple_GET_ITEM(res, 2))) {
            Py_DECREF(res);
            PyErr_SetString(PyExc_TypeError, "fallback must return (tag, text, unknown field names)");
            return -2;
        }
        PyObject *unknown = PyTuple_GET_ITEM(res, 2); /* counted with the record, like the fields read here */
        if (PyList_SetSlice(c->pending, pending0, PyList_GET_SIZE(c->pending), NULL) < 0) {
            Py_DECREF(res);
            return -2;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(unknown); i++) {
            if (PyList_Append(c->pending, PyList_GET_ITEM(unknown, i)) < 0) {
                Py_DECREF(res);
                return -2;
            }
        }
        *tag = PyTuple_GET_ITEM(res, 0);
        *text = PyTuple_GET_ITEM(res, 1);
        Py_INCREF(*tag);
        Py_INCREF(*text);
        Py_DECREF(res);
        return 0;
    }
    switch (which) {
    case 0:
        Py_INCREF(S_empty);
        Py_INCREF(Py_None);
        *tag = S_empty;
        *text = Py_None;
        return 0;
    case 1: {
        int rc = utf8(c, sp, sn, "an attribute string value", text);
        if (rc < 0) return rc;
        Py_INCREF(S_string);
        *tag = S_string;
        return 0;
    }
    case 2:
        *tag = S_bool;
        *text = iv ? S_true : S_false;
        Py_INCREF(*tag);
        Py_INCREF(*text);
        return 0;
    case 3:
        *text = PyUnicode_FromFormat("%lld", (long long)(int64_t)iv);
        if (!*text) return -2;
        Py_INCREF(S_int);
        *tag = S_int;
        return 0;
    case 4: {
        double d;
        memcpy(&d, &iv, 8);
        if (isnan(d)) {
            *text = S_nan;
            Py_INCREF(*text);
        } else if (isinf(d)) {
            *text = d > 0 ? S_inf : S_ninf;
            Py_INCREF(*text);
        } else {
            if (!(*text = double_text(d))) return -2;
        }
        Py_INCREF(S_double);
        *tag = S_double;
        return 0;
    }
    }
    PyErr_SetString(PyExc_RuntimeError, "unreachable AnyValue case");
    return -2;
}

/* Attribute keys repeat endlessly: a small cache maps key bytes to one str object, and each batch's
 * key index maps that str to a small int, which is what the batch stores per attribute. */
#define KC_SIZE 4096
#define KC_MAX_KEY 256
typedef struct {
    uint64_t h;
    Py_ssize_t n;
    char *bytes;
    PyObject *str;
    uint64_t serial; /* the IdBuf whose key table gave this key id (0: none yet) */
    int32_t id;
} KCEntry;
static KCEntry kcache[KC_SIZE];
static int kcache_used;

/* The key cache's hash: eight bytes a step (a key is ~10-30 bytes), multiply and fold; only this
 * process's cache uses it, so it need not be stable across builds. */
static uint64_t key_hash(const uint8_t *p, Py_ssize_t n) {
    const uint8_t *start = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    w = 0;
    if (n && p - start >= 8 - n) {
        /* the last n bytes, read as the top of an eight-byte word that ends with them (inside the
         * key): the same value as copying the n bytes alone, without a variable-length copy */
        memcpy(&w, p + n - 8, 8);
        w >>= (8 - n) * 8;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    }
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

static void kcache_clear(void) {
    for (int i = 0; i < KC_SIZE; i++) {
        if (kcache[i].str) {
            Py_DECREF(kcache[i].str);
            PyMem_Free(kcache[i].bytes);
            kcache[i].str = NULL;
        }
    }
    kcache_used = 0;
}

/* A new reference to the str of key bytes; a record error if they are not UTF-8. */
static int key_str(Ctx *c, const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (n > KC_MAX_KEY) return utf8(c, p, n, "an attribute key", out);
    uint64_t h = key_hash(p, n);
    int slot = -1;
    for (int probe = 0; probe < 8; probe++) {
        KCEntry *e = &kcache[(h + probe) & (KC_SIZE - 1)];
        if (!e->str) {
            if (slot < 0) slot = (int)((h + probe) & (KC_SIZE - 1));
            break;
        }
        if (e->h == h && e->n == n && memcmp(e->bytes, p, n) == 0) {
            Py_INCREF(e->str);
            *out = e->str;
            return 0;
        }
    }
    int rc = utf8(c, p, n, "an attribute key", out);
    if (rc < 0 || slot < 0) return rc;
    if (kcache_used >= KC_SIZE / 2) {
        kcache_clear();
        slot = (int)(h & (KC_SIZE - 1));
    }
    char *copy = PyMem_Malloc(n ? n : 1);
    if (!copy) return 0; /* not cached: fine */
    memcpy(copy, p, n);
    kcache[slot] = (KCEntry){h, n, copy, *out};
    Py_INCREF(*out);
    kcache_used++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* attribute lists */

/* kidx.setdefault(k, len(kidx)): the key's position in the batch's key table, borrowed (the dict
 * holds it); NULL on error. */
static PyObject *key_index(PyObject *kidx, PyObject *k) {
    PyObject *i = PyDict_GetItemWithError(kidx, k);
    if (!i) {
        if (PyErr_Occurred()) return NULL;
        PyObject *ni = PyLong_FromSsize_t(PyDict_GET_SIZE(kidx));
        if (!ni) return NULL;
        int rc = PyDict_SetItem(kidx, k, ni);
        Py_DECREF(ni); /* the dict holds it */
        if (rc < 0) return NULL;
        i = ni;
    }
    return i;
}

/* The parts of an attribute-lists tuple (keys, vals, tag_pos, tags, key_index), borrowed; -1 with a
 * TypeError if t is not a 5-tuple (the caller checks the parts' types). */
static int attr_parts(PyObject *t, PyObject **keys, PyObject **vals, PyObject **tag_pos, PyObject **tags,
                      PyObject **kidx) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
        PyErr_SetString(PyExc_TypeError, "attribute lists must be a 5-tuple (keys, vals, tag_pos, tags, key_index)");
        return -1;
    }
    *keys = PyTuple_GET_ITEM(t, 0);
    *vals = PyTuple_GET_ITEM(t, 1);
    *tag_pos = PyTuple_GET_ITEM(t, 2);
    *tags = PyTuple_GET_ITEM(t, 3);
    *kidx = PyTuple_GET_ITEM(t, 4);
    return 0;
}

/* del l[n:] */
static int truncate_list(PyObject *l, Py_ssize_t n) {
    if (PyList_GET_SIZE(l) > n) return PyList_SetSlice(l, n, PyList_GET_SIZE(l), NULL);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* KeyValue */

/* Read one KeyValue's fields: the key bytes (*kp_, *kn_) and the value, either one occurrence
 * (*vp_, *vn_) or, when the value field is repeated, the concatenation of them all in *merged_ (a new
 * bytes object, NULL otherwise). A record error if the bytes are malformed; -2 on a Python error. */
static int kv_read(Ctx *c, const uint8_t *p, Py_ssize_t n, const uint8_t **kp_, Py_ssize_t *kn_, const uint8_t **vp_,
                   Py_ssize_t *vn_, PyObject **merged_) {
    Rd r = {p, p + n};
    const uint8_t *kp = NULL, *vp = NULL;
    Py_ssize_t kn = 0, vn = 0;
    int nvalues = 0;
    PyObject *merged = NULL;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) goto bad;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 2) {
            if (rd_str(&r, &kp, &kn) < 0) goto bad;
        } else if (f == 2 && wt == 2) {
            const uint8_t *s;
            Py_ssize_t sn;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if (nvalues == 0) {
                vp = s;
                vn = sn;
            } else { /* a repeated message field merges: keep the concatenation */
                int rc = merge_occurrence(&merged, nvalues, vp, vn, s, sn);
                if (rc == -1) goto bad;
                if (rc < 0) return rc;
            }
            nvalues++;
        } else if (f == 3 && wt == 0) { /* key_strindex: a profiles-only field, known and ignored */
            if (skip_field(&r, f, wt) < 0) goto bad;
        } else {
            if (skip_field(&r, f, wt) < 0) goto bad;
            int rc = count_unknown(c, "KeyValue", (uint64_t)f);
            if (rc < 0) {
                Py_XDECREF(merged);
                return rc;
            }
        }
    }
    *kp_ = kp;
    *kn_ = kn;
    *vp_ = vp;
    *vn_ = vn;
    *merged_ = merged;
    return 0;
bad:
    Py_XDECREF(merged);
    return malformed(c, "an attribute");
}

/* The key's str and the value's (tag, text) of a KeyValue read by kv_read, new references; takes
 * over (releases) merged. */
static int kv_render(Ctx *c, const uint8_t *kp, Py_ssize_t kn, const uint8_t *vp, Py_ssize_t vn, PyObject *merged,
                     PyObject **k, PyObject **tag, PyObject **text) {
    int rc = key_str(c, kp, kn, k);
    if (rc < 0) {
        Py_XDECREF(merged);
        return rc;
    }
    if (merged)
        rc = render_any(c, (const uint8_t *)PyBytes_AS_STRING(merged), PyBytes_GET_SIZE(merged), 1, tag, text);
    else
        rc = render_any(c, vp, vn, 0, tag, text);
    Py_XDECREF(merged);
    if (rc < 0) {
        Py_DECREF(*k);
        return rc;
    }
    return 0;
}

/* v as decimal text with a terminating NUL into out (room for 21 bytes): what "%lld" writes, without
 * the cost of snprintf's format parsing. Returns the length. */
static int fmt_i64(char *out, int64_t v) {
    char tmp[20];
    int n = 0, k = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[k++] = '-';
    while (n) out[k++] = tmp[--n];
    out[k] = 0;
    return k;
}

#endif /* OTLP_AIOPS_WIRE_PB_H */
