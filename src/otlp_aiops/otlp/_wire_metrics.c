/*
 * _wire_metrics: decode OTLP metric data points (gauge/sum number points, histograms, exponential
 * histograms, summaries, and their exemplars) straight from protobuf wire bytes into the row tuples
 * and flat attribute lists of otlp_aiops.otlp.batches.MetricBatch.
 *
 * Why: the pure-Python path parses each ResourceMetrics with upb and then reads every field of every
 * point from Python; nearly all of a point's cost is in those reads. This module reads the bytes
 * once and builds only the objects the batch keeps.
 *
 * Contract (see decode_proto._MetricsFast): decode_block() takes one serialised ResourceMetrics and
 * either decodes all of it (returns the record index after its last point) or, at the first thing
 * that is not the plain common case, undoes what it appended and returns None, and the caller runs
 * the pure-Python decoder on the block. "Not the common case" is everything the Python decoder
 * reports or treats specially: malformed bytes, invalid UTF-8, a metric without data, a data field
 * given twice (merging), an unknown aggregation temporality, a bad histogram shape, a timestamp
 * beyond int64, an exemplar id of the wrong length, a repeated singular message field. So every
 * quarantine entry, and every block the upb parser would reject, comes from the reference decoder
 * itself; this module only has to agree with it on clean blocks. Unknown fields are counted here
 * (into a list of "Message.#field" names the caller adds once the block is decoded).
 *
 * series_id and the metric table entry are memoised per batch in two dicts keyed by bytes: the
 * metric's identifying fields, and those plus the context index and the point's raw attribute
 * bytes (the same bytes always render to the same attributes, so they give the same series_id).
 * On a miss, Python computes the value (series_fn / metric_fn), so the hash is the one in batches.py.
 *
 * The reading and attribute helpers are a copy of those in _wire.c (the span and log decoder), kept
 * separate so the two extensions build and change independently.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <ctype.h>

#define INT64_MAX_U ((uint64_t)INT64_MAX)

/* ---------------------------------------------------------------------------------------------- */
/* reading */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Rd;

static int rd_varint(Rd *r, uint64_t *out) {
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

/* ---------------------------------------------------------------------------------------------- */
/* output state */

typedef struct {
    PyObject *keys, *vals, *tag_pos, *tags; /* borrowed lists of an AttrCols */
    PyObject *kidx;                         /* its key index: dict key -> position in the key table */
} Attrs;

typedef struct {
    PyObject *fallback; /* callable(bytes) -> (tag, text): composite AnyValues */
    PyObject *unknown;  /* dict "Message.#field" -> count */
    PyObject *pending;  /* unknown-field keys of the current record, added to `unknown` once it parses */
    /* the current record's error, if any */
    const char *err_code;
    PyObject *err_msg;
} Ctx;

static PyObject *S_string, *S_bool, *S_int, *S_double, *S_empty, *S_true, *S_false, *S_nan, *S_inf, *S_ninf,
    *S_empty_str;

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
            char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (!s) return -2;
            *text = PyUnicode_FromString(s);
            PyMem_Free(s);
            if (!*text) return -2;
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
} KCEntry;
static KCEntry kcache[KC_SIZE];
static int kcache_used;

static uint64_t fnv1a(const uint8_t *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
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
    uint64_t h = fnv1a(p, n);
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

/* keys.append(kidx.setdefault(k, len(kidx))) */
static int append_key(Attrs *a, PyObject *k) {
    PyObject *i = PyDict_GetItemWithError(a->kidx, k);
    if (!i) {
        if (PyErr_Occurred()) return -2;
        PyObject *ni = PyLong_FromSsize_t(PyDict_GET_SIZE(a->kidx));
        if (!ni) return -2;
        int rc = PyDict_SetItem(a->kidx, k, ni);
        Py_DECREF(ni); /* the dict holds it */
        if (rc < 0) return -2;
        i = ni;
    }
    return PyList_Append(a->keys, i) < 0 ? -2 : 0;
}

/* Append one KeyValue to the attribute lists. */
static int decode_kv(Ctx *c, Attrs *a, const uint8_t *p, Py_ssize_t n) {
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
                if ((nvalues == 1 && !wire_ok(vp, vn)) || !wire_ok(s, sn)) goto bad;
                if (merged == NULL) {
                    merged = PyBytes_FromStringAndSize((const char *)vp, vn);
                    if (!merged) return -2;
                }
                PyObject *more = PyBytes_FromStringAndSize((const char *)s, sn);
                if (!more) {
                    Py_DECREF(merged);
                    return -2;
                }
                PyBytes_ConcatAndDel(&merged, more);
                if (!merged) return -2;
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
    PyObject *k;
    int rc = key_str(c, kp, kn, &k);
    if (rc < 0) {
        Py_XDECREF(merged);
        return rc;
    }
    PyObject *tag, *text;
    if (merged)
        rc = render_any(c, (const uint8_t *)PyBytes_AS_STRING(merged), PyBytes_GET_SIZE(merged), 1, &tag, &text);
    else
        rc = render_any(c, vp, vn, 0, &tag, &text);
    Py_XDECREF(merged);
    if (rc < 0) {
        Py_DECREF(k);
        return rc;
    }
    if (tag != S_string) {
        PyObject *pos = PyLong_FromSsize_t(PyList_GET_SIZE(a->keys));
        if (!pos || PyList_Append(a->tag_pos, pos) < 0 || PyList_Append(a->tags, tag) < 0) {
            Py_XDECREF(pos);
            Py_DECREF(k);
            Py_DECREF(tag);
            Py_DECREF(text);
            return -2;
        }
        Py_DECREF(pos);
    }
    rc = (append_key(a, k) < 0 || PyList_Append(a->vals, text) < 0) ? -2 : 0;
    Py_DECREF(k);
    Py_DECREF(tag);
    Py_DECREF(text);
    return rc;
bad:
    Py_XDECREF(merged);
    return malformed(c, "an attribute");
}

static int get_attrs(PyObject *t, Attrs *a) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
        PyErr_SetString(PyExc_TypeError, "attribute lists must be a 5-tuple (keys, vals, tag_pos, tags, key_index)");
        return -1;
    }
    a->keys = PyTuple_GET_ITEM(t, 0);
    a->vals = PyTuple_GET_ITEM(t, 1);
    a->tag_pos = PyTuple_GET_ITEM(t, 2);
    a->tags = PyTuple_GET_ITEM(t, 3);
    a->kidx = PyTuple_GET_ITEM(t, 4);
    if (!PyList_Check(a->keys) || !PyList_Check(a->vals) || !PyList_Check(a->tag_pos) || !PyList_Check(a->tags) ||
        !PyDict_Check(a->kidx)) {
        PyErr_SetString(PyExc_TypeError, "attribute lists must be lists, and the key index a dict");
        return -1;
    }
    return 0;
}

typedef struct {
    Py_ssize_t keys, vals, tag_pos, tags;
} AttrsMark;

static void attrs_mark(Attrs *a, AttrsMark *m) {
    m->keys = PyList_GET_SIZE(a->keys);
    m->vals = PyList_GET_SIZE(a->vals);
    m->tag_pos = PyList_GET_SIZE(a->tag_pos);
    m->tags = PyList_GET_SIZE(a->tags);
}

static int truncate_list(PyObject *l, Py_ssize_t n) {
    if (PyList_GET_SIZE(l) > n) return PyList_SetSlice(l, n, PyList_GET_SIZE(l), NULL);
    return 0;
}

static int attrs_rollback(Attrs *a, AttrsMark *m) {
    if (truncate_list(a->keys, m->keys) < 0 || truncate_list(a->vals, m->vals) < 0 ||
        truncate_list(a->tag_pos, m->tag_pos) < 0 || truncate_list(a->tags, m->tags) < 0)
        return -2;
    return 0;
}

static PyObject *size_obj(PyObject *list) { return PyLong_FromSsize_t(PyList_GET_SIZE(list)); }

/* ---------------------------------------------------------------------------------------------- */
/* scratch buffers */

typedef struct {
    uint8_t *p;
    Py_ssize_t n, cap;
} Buf;

static int buf_put(Buf *b, const void *p, Py_ssize_t n) {
    if (b->n + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = PyMem_Realloc(b->p, cap);
        if (!q) {
            PyErr_NoMemory();
            return -2;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* a length-prefixed piece, so that concatenated pieces cannot be confused */
static int buf_piece(Buf *b, const void *p, Py_ssize_t n) {
    uint64_t len = (uint64_t)n;
    if (buf_put(b, &len, 8) < 0) return -2;
    return n ? buf_put(b, p, n) : 0;
}

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Slice;

typedef struct {
    Slice *v;
    Py_ssize_t n, cap;
} Slices;

static int slices_put(Slices *s, const uint8_t *p, Py_ssize_t n) {
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? 2 * s->cap : 16;
        Slice *v = PyMem_Realloc(s->v, cap * sizeof(Slice));
        if (!v) {
            PyErr_NoMemory();
            return -2;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (Slice){p, n};
    return 0;
}

/* 64-bit values: bucket counts, or doubles as their bits */
typedef struct {
    uint64_t *v;
    Py_ssize_t n, cap;
} U64s;

static int u64_put(U64s *s, uint64_t x) {
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *v = PyMem_Realloc(s->v, cap * sizeof(uint64_t));
        if (!v) {
            PyErr_NoMemory();
            return -2;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static PyObject *u64_list(U64s *s, int doubles) {
    PyObject *l = PyList_New(s->n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        PyObject *x = doubles ? PyFloat_FromDouble(as_double(s->v[i])) : PyLong_FromUnsignedLongLong(s->v[i]);
        if (!x) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, x);
    }
    return l;
}

/* A repeated fixed64/double field: one value (wire type 1) or packed (2). -1: malformed. */
static int rd_rep_fixed64(Rd *r, int wt, U64s *out) {
    uint64_t v;
    if (wt == 1) {
        if (rd_fixed64(r, &v) < 0) return -1;
        return u64_put(out, v);
    }
    const uint8_t *s;
    Py_ssize_t n;
    if (rd_bytes(r, &s, &n) < 0 || n % 8) return -1;
    for (Py_ssize_t i = 0; i < n; i += 8) {
        memcpy(&v, s + i, 8);
        if (u64_put(out, v) < 0) return -2;
    }
    return 0;
}

/* A repeated uint64 field: one varint (wire type 0) or packed (2). */
static int rd_rep_varint(Rd *r, int wt, U64s *out) {
    uint64_t v;
    if (wt == 0) {
        if (rd_varint(r, &v) < 0) return -1;
        return u64_put(out, v);
    }
    const uint8_t *s;
    Py_ssize_t n;
    if (rd_bytes(r, &s, &n) < 0) return -1;
    Rd q = {s, s + n};
    while (q.p < q.end) {
        if (rd_varint(&q, &v) < 0) return -1;
        if (u64_put(out, v) < 0) return -2;
    }
    return 0;
}

static int32_t zigzag32(uint64_t v) {
    uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

static PyObject *opt_float(int has, uint64_t bits) {
    if (!has) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    return PyFloat_FromDouble(as_double(bits));
}

/* ---------------------------------------------------------------------------------------------- */
/* metrics */

enum { T_NUMBER, T_HIST, T_EXP, T_SUMMARY, T_COUNT };

#define PUNT -1 /* not the common case: the caller decodes the block in Python */

static PyObject *S_short[T_COUNT], *S_mtype[5];

typedef struct {
    Ctx c;
    PyObject *fixed[T_COUNT];     /* bytearray: the nine shared columns, int64, 72 bytes a row */
    PyObject *shape[T_COUNT];     /* tuple of lists: the shape columns */
    Attrs attrs[T_COUNT];
    PyObject *exemplars;
    Attrs ex_attrs;
    PyObject *info_memo, *sid_memo;
    PyObject *res_fn, *scope_fn, *metric_fn, *series_fn;
    long long rec;
    /* the current scope's context: index (object and value), resource id and service name */
    PyObject *ci, *rid, *svc;
    long ci_val;
    /* the current metric */
    PyObject *ii, *name;
    long ii_val;
    const uint8_t *name_p;
    Py_ssize_t name_n;
    Buf ikey, skey;
    Slices exs, md;
    U64s u1, u2;
} M;

/* The metric name as a str (exemplar rows carry it), made once per metric. */
static PyObject *metric_name(M *m) {
    if (!m->name) {
        m->name = PyUnicode_DecodeUTF8((const char *)m->name_p, m->name_n, NULL);
    }
    return m->name;
}

/* One exemplar of a point: its row. */
static int decode_exemplar(M *m, int table, PyObject *sid, Py_ssize_t j, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t time = 0, val = 0;
    int which = 0, rc;
    const uint8_t *tp = NULL, *sp = NULL;
    Py_ssize_t tn = 0, sn_ = 0;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return PUNT;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 7 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) return PUNT;
            if ((rc = decode_kv(&m->c, &m->ex_attrs, s, sn)) < 0) return rc;
        } else if (f == 2 && wt == 1) {
            if (rd_fixed64(&r, &time) < 0) return PUNT;
        } else if ((f == 3 || f == 6) && wt == 1) {
            if (rd_fixed64(&r, &val) < 0) return PUNT;
            which = f;
        } else if (f == 4 && wt == 2) {
            if (rd_bytes(&r, &sp, &sn_) < 0) return PUNT;
        } else if (f == 5 && wt == 2) {
            if (rd_bytes(&r, &tp, &tn) < 0) return PUNT;
        } else {
            if (skip_field(&r, f, wt) < 0) return PUNT;
            if ((rc = count_unknown(&m->c, "Exemplar", (uint64_t)f)) < 0) return rc;
        }
    }
    if (time > INT64_MAX_U) return PUNT;
    PyObject *tid = NULL, *spid = NULL, *name = metric_name(m);
    if (!name) return -2;
    if ((rc = id_bytes(&m->c, tp, tn, 16, "trace_id", &tid)) < 0) return rc;
    if ((rc = id_bytes(&m->c, sp, sn_, 8, "span_id", &spid)) < 0) {
        Py_DECREF(tid);
        return rc;
    }
    PyObject *vd, *vi;
    if (which == 6) {
        int64_t iv = (int64_t)val;
        vd = PyFloat_FromDouble((double)iv);
        vi = PyLong_FromLongLong(iv);
    } else if (which == 3) {
        vd = PyFloat_FromDouble(as_double(val));
        vi = Py_None;
        Py_INCREF(vi);
    } else {
        vd = Py_None;
        vi = Py_None;
        Py_INCREF(vd);
        Py_INCREF(vi);
    }
    PyObject *t = PyTuple_New(13);
    if (!t) {
        Py_XDECREF(vd);
        Py_XDECREF(vi);
        Py_DECREF(tid);
        Py_DECREF(spid);
        return -2;
    }
    Py_INCREF(S_short[table]);
    PyTuple_SET_ITEM(t, 0, S_short[table]);
    Py_INCREF(sid);
    PyTuple_SET_ITEM(t, 1, sid);
    Py_INCREF(name);
    PyTuple_SET_ITEM(t, 2, name);
    PyTuple_SET_ITEM(t, 3, PyLong_FromSsize_t(j));
    PyTuple_SET_ITEM(t, 4, PyLong_FromUnsignedLongLong(time));
    PyTuple_SET_ITEM(t, 5, vd);
    PyTuple_SET_ITEM(t, 6, vi);
    PyTuple_SET_ITEM(t, 7, tid);
    PyTuple_SET_ITEM(t, 8, spid);
    PyTuple_SET_ITEM(t, 9, size_obj(m->ex_attrs.keys));
    Py_INCREF(m->rid);
    PyTuple_SET_ITEM(t, 10, m->rid);
    Py_INCREF(m->svc);
    PyTuple_SET_ITEM(t, 11, m->svc);
    PyTuple_SET_ITEM(t, 12, PyLong_FromLongLong(m->rec));
    for (int i = 0; i < 13; i++) {
        if (!PyTuple_GET_ITEM(t, i)) {
            Py_DECREF(t);
            return -2;
        }
    }
    rc = PyList_Append(m->exemplars, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
}

/* Start a point: its series key begins with the table, the context and the metric's identity; the
 * raw bytes of each attribute are added as they are read. */
static int point_begin(M *m, int table) {
    m->skey.n = 0;
    m->exs.n = 0;
    uint8_t t = (uint8_t)table;
    int64_t ci = m->ci_val;
    if (buf_put(&m->skey, &t, 1) < 0 || buf_put(&m->skey, &ci, 8) < 0) return -2;
    return buf_put(&m->skey, m->ikey.p, m->ikey.n);
}

static int point_attr(M *m, int table, const uint8_t *s, Py_ssize_t sn) {
    if (buf_piece(&m->skey, s, sn) < 0) return -2;
    return decode_kv(&m->c, &m->attrs[table], s, sn);
}

/* Finish a point: its series_id (memoised), its exemplars, and its row (9 shared columns, then
 * the shape columns, whose references it takes). */
static int point_end(M *m, int table, Py_ssize_t a0, uint64_t start, uint64_t time, uint32_t flags,
                     PyObject **shape, int nshape) {
    int rc = -2;
    PyObject *sid = NULL;
    for (int i = 0; i < nshape; i++)
        if (!shape[i]) goto out;
    if (start > INT64_MAX_U || time > INT64_MAX_U) {
        rc = PUNT;
        goto out;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)m->skey.p, m->skey.n);
    if (!key) goto out;
    sid = PyDict_GetItemWithError(m->sid_memo, key);
    if (sid) {
        Py_INCREF(sid);
    } else if (!PyErr_Occurred()) {
        sid = PyObject_CallFunction(m->series_fn, "inOO", table, a0, m->ci, m->ii);
        if (sid && PyDict_SetItem(m->sid_memo, key, sid) < 0) Py_CLEAR(sid);
    }
    Py_DECREF(key);
    if (!sid) goto out;
    for (Py_ssize_t j = 0; j < m->exs.n; j++) {
        if ((rc = decode_exemplar(m, table, sid, j, m->exs.v[j].p, m->exs.v[j].n)) < 0) goto out;
    }
    rc = -2;
    int64_t row[9];
    row[0] = m->ii_val;
    row[1] = PyLong_AsLongLong(sid);
    if (row[1] == -1 && PyErr_Occurred()) goto out;
    row[2] = (int64_t)start;
    row[3] = (int64_t)time;
    row[4] = (int64_t)PyList_GET_SIZE(m->attrs[table].keys);
    row[5] = (int64_t)flags;
    row[6] = (int64_t)m->exs.n;
    row[7] = (int64_t)m->ci_val;
    row[8] = (int64_t)m->rec;
    PyObject *ba = m->fixed[table];
    Py_ssize_t size = PyByteArray_GET_SIZE(ba);
    if (PyByteArray_Resize(ba, size + (Py_ssize_t)sizeof row) < 0) goto out;
    memcpy(PyByteArray_AS_STRING(ba) + size, row, sizeof row);
    for (int i = 0; i < nshape; i++) /* (the lists all have the same length: checked at entry) */
        if (PyList_Append(PyTuple_GET_ITEM(m->shape[table], i), shape[i]) < 0) goto out;
    rc = 0;
out:
    for (int i = 0; i < nshape; i++) Py_XDECREF(shape[i]);
    Py_XDECREF(sid);
    if (rc == 0) m->rec++;
    return rc;
}

/* The field-reading boilerplate of the point decoders: `bad` on malformed bytes; a known field
 * number with another wire type is an unknown field, as in upb. */
#define EXPECT(w) \
    if (wt != (w)) goto unknown
#define READ(call) \
    if ((call) < 0) return PUNT

static int decode_number(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, val = 0, flags = 0;
    int which = 0, rc;
    Py_ssize_t a0 = PyList_GET_SIZE(m->attrs[T_NUMBER].keys);
    if (point_begin(m, T_NUMBER) < 0) return -2;
    while (r.p < r.end) {
        uint64_t key;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 7:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = point_attr(m, T_NUMBER, s, sn)) < 0) return rc;
            break;
        case 2: EXPECT(1); READ(rd_fixed64(&r, &start)); break;
        case 3: EXPECT(1); READ(rd_fixed64(&r, &time)); break;
        case 4:
        case 6: EXPECT(1); READ(rd_fixed64(&r, &val)); which = f; break;
        case 5:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if (slices_put(&m->exs, s, sn) < 0) return -2;
            break;
        case 8: EXPECT(0); READ(rd_varint(&r, &flags)); break;
        default:
        unknown:
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "NumberDataPoint", (uint64_t)f)) < 0) return rc;
        }
    }
    PyObject *shape[2];
    if (which == 6) {
        int64_t iv = (int64_t)val;
        shape[0] = PyFloat_FromDouble((double)iv);
        shape[1] = PyLong_FromLongLong(iv);
    } else {
        shape[0] = which == 4 ? PyFloat_FromDouble(as_double(val)) : (Py_INCREF(Py_None), Py_None);
        shape[1] = Py_None;
        Py_INCREF(Py_None);
    }
    return point_end(m, T_NUMBER, a0, start, time, (uint32_t)flags, shape, 2);
}

/* histogram_problem() of batches.py: nonzero when the point breaks the OTLP shape rules. */
static int histogram_bad(uint64_t count, U64s *counts, U64s *bounds) {
    if (counts->n == 0) return bounds->n != 0;
    if (counts->n != bounds->n + 1) return 1;
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < counts->n; i++) {
        if (total + counts->v[i] < total) return 1; /* beyond uint64: cannot equal count */
        total += counts->v[i];
    }
    if (total != count) return 1;
    for (Py_ssize_t i = 0; i < bounds->n; i++) {
        double b = as_double(bounds->v[i]);
        if (isnan(b)) return 1;
        if (i > 0 && !(b > as_double(bounds->v[i - 1]))) return 1;
    }
    return 0;
}

static int decode_histogram(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, mn = 0, mx = 0, flags = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc;
    Py_ssize_t a0 = PyList_GET_SIZE(m->attrs[T_HIST].keys);
    if (point_begin(m, T_HIST) < 0) return -2;
    m->u1.n = m->u2.n = 0;
    while (r.p < r.end) {
        uint64_t key;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 9:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = point_attr(m, T_HIST, s, sn)) < 0) return rc;
            break;
        case 2: EXPECT(1); READ(rd_fixed64(&r, &start)); break;
        case 3: EXPECT(1); READ(rd_fixed64(&r, &time)); break;
        case 4: EXPECT(1); READ(rd_fixed64(&r, &count)); break;
        case 5: EXPECT(1); READ(rd_fixed64(&r, &sum)); has_sum = 1; break;
        case 6:
        case 7:
            if (wt != 1 && wt != 2) goto unknown;
            if ((rc = rd_rep_fixed64(&r, wt, f == 6 ? &m->u1 : &m->u2)) < 0) return rc;
            break;
        case 8:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if (slices_put(&m->exs, s, sn) < 0) return -2;
            break;
        case 10: EXPECT(0); READ(rd_varint(&r, &flags)); break;
        case 11: EXPECT(1); READ(rd_fixed64(&r, &mn)); has_min = 1; break;
        case 12: EXPECT(1); READ(rd_fixed64(&r, &mx)); has_max = 1; break;
        default:
        unknown:
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "HistogramDataPoint", (uint64_t)f)) < 0) return rc;
        }
    }
    if (histogram_bad(count, &m->u1, &m->u2)) return PUNT;
    PyObject *shape[6] = {PyLong_FromUnsignedLongLong(count), opt_float(has_sum, sum), opt_float(has_min, mn),
                          opt_float(has_max, mx), u64_list(&m->u1, 0), u64_list(&m->u2, 1)};
    return point_end(m, T_HIST, a0, start, time, (uint32_t)flags, shape, 6);
}

/* Buckets of an exponential histogram point. */
static int decode_buckets(M *m, const uint8_t *p, Py_ssize_t n, int32_t *offset, U64s *counts) {
    Rd r = {p, p + n};
    int rc;
    while (r.p < r.end) {
        uint64_t key, v;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 0) {
            READ(rd_varint(&r, &v));
            *offset = zigzag32(v);
        } else if (f == 2 && (wt == 0 || wt == 2)) {
            if ((rc = rd_rep_varint(&r, wt, counts)) < 0) return rc;
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "Buckets", (uint64_t)f)) < 0) return rc;
        }
    }
    return 0;
}

static int decode_exp(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, mn = 0, mx = 0, flags = 0, scale = 0, zc = 0, zt = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc;
    const uint8_t *pos = NULL, *neg = NULL;
    Py_ssize_t posn = 0, negn = 0;
    int npos = 0, nneg = 0;
    Py_ssize_t a0 = PyList_GET_SIZE(m->attrs[T_EXP].keys);
    if (point_begin(m, T_EXP) < 0) return -2;
    m->u1.n = m->u2.n = 0;
    while (r.p < r.end) {
        uint64_t key;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 1:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = point_attr(m, T_EXP, s, sn)) < 0) return rc;
            break;
        case 2: EXPECT(1); READ(rd_fixed64(&r, &start)); break;
        case 3: EXPECT(1); READ(rd_fixed64(&r, &time)); break;
        case 4: EXPECT(1); READ(rd_fixed64(&r, &count)); break;
        case 5: EXPECT(1); READ(rd_fixed64(&r, &sum)); has_sum = 1; break;
        case 6: EXPECT(0); READ(rd_varint(&r, &scale)); break;
        case 7: EXPECT(1); READ(rd_fixed64(&r, &zc)); break;
        case 8: EXPECT(2); READ(rd_bytes(&r, &pos, &posn)); npos++; break;
        case 9: EXPECT(2); READ(rd_bytes(&r, &neg, &negn)); nneg++; break;
        case 10: EXPECT(0); READ(rd_varint(&r, &flags)); break;
        case 11:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if (slices_put(&m->exs, s, sn) < 0) return -2;
            break;
        case 12: EXPECT(1); READ(rd_fixed64(&r, &mn)); has_min = 1; break;
        case 13: EXPECT(1); READ(rd_fixed64(&r, &mx)); has_max = 1; break;
        case 14: EXPECT(1); READ(rd_fixed64(&r, &zt)); break;
        default:
        unknown:
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "ExponentialHistogramDataPoint", (uint64_t)f)) < 0) return rc;
        }
    }
    if (npos > 1 || nneg > 1) return PUNT; /* occurrences merge: left to upb */
    int32_t poff = 0, noff = 0;
    if (npos && (rc = decode_buckets(m, pos, posn, &poff, &m->u1)) < 0) return rc;
    if (nneg && (rc = decode_buckets(m, neg, negn, &noff, &m->u2)) < 0) return rc;
    PyObject *shape[11] = {
        PyLong_FromUnsignedLongLong(count), opt_float(has_sum, sum), opt_float(has_min, mn), opt_float(has_max, mx),
        PyLong_FromLong(zigzag32(scale)),   PyLong_FromUnsignedLongLong(zc), PyFloat_FromDouble(as_double(zt)),
        PyLong_FromLong(poff),              u64_list(&m->u1, 0),             PyLong_FromLong(noff),
        u64_list(&m->u2, 0),
    };
    return point_end(m, T_EXP, a0, start, time, (uint32_t)flags, shape, 11);
}

static int decode_summary(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, flags = 0;
    int rc;
    Py_ssize_t a0 = PyList_GET_SIZE(m->attrs[T_SUMMARY].keys);
    if (point_begin(m, T_SUMMARY) < 0) return -2;
    m->u1.n = m->u2.n = 0;
    while (r.p < r.end) {
        uint64_t key;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 7:
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = point_attr(m, T_SUMMARY, s, sn)) < 0) return rc;
            break;
        case 2: EXPECT(1); READ(rd_fixed64(&r, &start)); break;
        case 3: EXPECT(1); READ(rd_fixed64(&r, &time)); break;
        case 4: EXPECT(1); READ(rd_fixed64(&r, &count)); break;
        case 5: EXPECT(1); READ(rd_fixed64(&r, &sum)); break;
        case 6: {
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            Rd q = {s, s + sn};
            uint64_t qv = 0, vv = 0;
            while (q.p < q.end) {
                uint64_t k2;
                READ(rd_tag(&q, &k2));
                int f2 = (int)(k2 >> 3), w2 = (int)(k2 & 7);
                if (f2 == 1 && w2 == 1) {
                    READ(rd_fixed64(&q, &qv));
                } else if (f2 == 2 && w2 == 1) {
                    READ(rd_fixed64(&q, &vv));
                } else {
                    READ(skip_field(&q, f2, w2));
                    if ((rc = count_unknown(&m->c, "ValueAtQuantile", (uint64_t)f2)) < 0) return rc;
                }
            }
            if (u64_put(&m->u1, qv) < 0 || u64_put(&m->u2, vv) < 0) return -2;
            break;
        }
        case 8: EXPECT(0); READ(rd_varint(&r, &flags)); break;
        default:
        unknown:
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "SummaryDataPoint", (uint64_t)f)) < 0) return rc;
        }
    }
    PyObject *shape[4] = {PyLong_FromUnsignedLongLong(count), PyFloat_FromDouble(as_double(sum)),
                          u64_list(&m->u1, 1), u64_list(&m->u2, 1)};
    return point_end(m, T_SUMMARY, a0, start, time, (uint32_t)flags, shape, 4);
}

/* Metric.data: field number -> (type name, point table, message name) */
static int data_kind(int f) {
    switch (f) {
    case 5: return 0;  /* gauge */
    case 7: return 1;  /* sum */
    case 9: return 2;  /* histogram */
    case 10: return 3; /* exponential_histogram */
    case 11: return 4; /* summary */
    }
    return -1;
}
static const int KIND_TABLE[5] = {T_NUMBER, T_NUMBER, T_HIST, T_EXP, T_SUMMARY};
static const char *KIND_MSG[5] = {"Gauge", "Sum", "Histogram", "ExponentialHistogram", "Summary"};

static int decode_metric(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    const uint8_t *np = NULL, *dp = NULL, *up = NULL, *data = NULL;
    Py_ssize_t nn = 0, dn = 0, un = 0, datan = 0;
    int kind = -1, ndata = 0, rc;
    m->md.n = 0;
    while (r.p < r.end) {
        uint64_t key;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_str(&r, &np, &nn));
        } else if (f == 2 && wt == 2) {
            READ(rd_str(&r, &dp, &dn));
        } else if (f == 3 && wt == 2) {
            READ(rd_str(&r, &up, &un));
        } else if (data_kind(f) >= 0 && wt == 2) {
            READ(rd_bytes(&r, &data, &datan));
            kind = data_kind(f);
            ndata++;
        } else if (f == 12 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
            if (slices_put(&m->md, s, sn) < 0) return -2;
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "Metric", (uint64_t)f)) < 0) return rc;
        }
    }
    if (ndata != 1) return PUNT; /* no data (set aside), or data fields that merge or replace */
    if (!utf8_valid(np ? np : (const uint8_t *)"", nn) || !utf8_valid(dp ? dp : (const uint8_t *)"", dn) ||
        !utf8_valid(up ? up : (const uint8_t *)"", un))
        return PUNT;
    /* the data message: count its points, read temporality and monotonicity */
    Rd d = {data, data + datan};
    uint64_t temporality = 0, monotonic = 0;
    Py_ssize_t npoints = 0;
    while (d.p < d.end) {
        uint64_t key;
        READ(rd_tag(&d, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&d, &s, &sn));
            npoints++;
        } else if (f == 2 && wt == 0 && kind >= 1 && kind <= 3) {
            READ(rd_varint(&d, &temporality));
        } else if (f == 3 && wt == 0 && kind == 1) {
            READ(rd_varint(&d, &monotonic));
        } else {
            READ(skip_field(&d, f, wt));
            if ((rc = count_unknown(&m->c, KIND_MSG[kind], (uint64_t)f)) < 0) return rc;
        }
    }
    int32_t temp32 = (int32_t)temporality;
    int has_temp = kind >= 1 && kind <= 3;
    if (has_temp && (temp32 < 0 || temp32 > 2)) return PUNT;
    if (npoints == 0) /* nothing to write (the Python decoder's table entry is unused) */
        return m->md.n ? PUNT : 0; /* but its metadata is parsed (and may be broken): left to Python */
    /* the metric's identity: the info memo's key, and the start of each point's series key */
    m->ikey.n = 0;
    uint8_t tail[6] = {(uint8_t)kind, (uint8_t)(temp32 & 0xFF), 0, 0, 0, (uint8_t)(monotonic != 0)};
    if (buf_piece(&m->ikey, np, nn) < 0 || buf_piece(&m->ikey, dp, dn) < 0 || buf_piece(&m->ikey, up, un) < 0 ||
        buf_put(&m->ikey, tail, 6) < 0)
        return -2;
    m->name_p = np ? np : (const uint8_t *)"";
    m->name_n = nn;
    Py_CLEAR(m->name);
    Py_CLEAR(m->ii);
    PyObject *ikey = NULL;
    if (m->md.n == 0) {
        ikey = PyBytes_FromStringAndSize((const char *)m->ikey.p, m->ikey.n);
        if (!ikey) return -2;
        m->ii = PyDict_GetItemWithError(m->info_memo, ikey);
        if (m->ii) {
            Py_INCREF(m->ii);
        } else if (PyErr_Occurred()) {
            Py_DECREF(ikey);
            return -2;
        }
    }
    if (!m->ii) {
        PyObject *name = metric_name(m), *desc = NULL, *unit = NULL, *md = NULL;
        rc = -2;
        if (!name) goto info_out;
        desc = dn ? PyUnicode_DecodeUTF8((const char *)dp, dn, NULL) : (Py_INCREF(Py_None), Py_None);
        unit = un ? PyUnicode_DecodeUTF8((const char *)up, un, NULL) : (Py_INCREF(Py_None), Py_None);
        md = PyList_New(m->md.n);
        if (!desc || !unit || !md) goto info_out;
        for (Py_ssize_t i = 0; i < m->md.n; i++) {
            PyObject *b = PyBytes_FromStringAndSize((const char *)m->md.v[i].p, m->md.v[i].n);
            if (!b) goto info_out;
            PyList_SET_ITEM(md, i, b);
        }
        PyObject *temp_obj = has_temp ? PyLong_FromLong(temp32) : (Py_INCREF(Py_None), Py_None);
        PyObject *mono_obj = kind == 1 ? PyBool_FromLong(monotonic != 0) : (Py_INCREF(Py_None), Py_None);
        if (temp_obj && mono_obj)
            m->ii = PyObject_CallFunction(m->metric_fn, "OOOOOOO", name, desc, unit, S_mtype[kind], temp_obj,
                                          mono_obj, md);
        Py_XDECREF(temp_obj);
        Py_XDECREF(mono_obj);
        if (!m->ii) goto info_out;
        if (m->ii == Py_None) {
            Py_CLEAR(m->ii);
            rc = PUNT;
            goto info_out;
        }
        rc = ikey && PyDict_SetItem(m->info_memo, ikey, m->ii) < 0 ? -2 : 0;
    info_out:
        Py_XDECREF(desc);
        Py_XDECREF(unit);
        Py_XDECREF(md);
        if (rc < 0) {
            Py_XDECREF(ikey);
            return rc;
        }
    }
    Py_XDECREF(ikey);
    m->ii_val = PyLong_AsLong(m->ii);
    if (m->ii_val == -1 && PyErr_Occurred()) return -2;
    /* the points */
    int table = KIND_TABLE[kind];
    d = (Rd){data, data + datan};
    while (d.p < d.end) {
        uint64_t key;
        READ(rd_tag(&d, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&d, &s, &sn));
            switch (table) {
            case T_NUMBER: rc = decode_number(m, s, sn); break;
            case T_HIST: rc = decode_histogram(m, s, sn); break;
            case T_EXP: rc = decode_exp(m, s, sn); break;
            default: rc = decode_summary(m, s, sn);
            }
            if (rc < 0) return rc;
        } else {
            READ(skip_field(&d, f, wt));
        }
    }
    return 0;
}

/* The fields 1 (must be at most once: occurrences merge) and 3 of a Resource/ScopeMetrics, and its
 * unknown fields (counted). */
static int container_header(M *m, const uint8_t *p, Py_ssize_t n, const char *name, PyObject **f1, PyObject **f3) {
    Rd r = {p, p + n};
    const uint8_t *a1 = NULL, *a3 = NULL;
    Py_ssize_t n1 = 0, n3 = 0;
    int count1 = 0, rc;
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&r, &a1, &n1));
            count1++;
        } else if (f == 3 && wt == 2) {
            READ(rd_str(&r, &a3, &n3));
        } else if (f == 2 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, name, (uint64_t)f)) < 0) return rc;
        }
    }
    if (count1 > 1) return PUNT;
    *f1 = PyBytes_FromStringAndSize(a1 ? (const char *)a1 : "", n1);
    *f3 = PyBytes_FromStringAndSize(a3 ? (const char *)a3 : "", n3);
    if (!*f1 || !*f3) {
        Py_XDECREF(*f1);
        Py_XDECREF(*f3);
        return -2;
    }
    return 0;
}

static int decode_scope(M *m, PyObject *rinfo, const uint8_t *p, Py_ssize_t n) {
    PyObject *scope, *surl;
    int rc = container_header(m, p, n, "ScopeMetrics", &scope, &surl);
    if (rc < 0) return rc;
    PyObject *ctx = PyObject_CallFunctionObjArgs(m->scope_fn, rinfo, scope, surl, NULL);
    Py_DECREF(scope);
    Py_DECREF(surl);
    if (!ctx) return -2;
    if (ctx == Py_None) {
        Py_DECREF(ctx);
        return PUNT;
    }
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 3) {
        Py_DECREF(ctx);
        PyErr_SetString(PyExc_TypeError, "scope_fn must return (context index, resource_id, service_name)");
        return -2;
    }
    Py_XSETREF(m->ci, PyTuple_GET_ITEM(ctx, 0));
    Py_INCREF(m->ci);
    Py_XSETREF(m->rid, PyTuple_GET_ITEM(ctx, 1));
    Py_INCREF(m->rid);
    Py_XSETREF(m->svc, PyTuple_GET_ITEM(ctx, 2));
    Py_INCREF(m->svc);
    Py_DECREF(ctx);
    m->ci_val = PyLong_AsLong(m->ci);
    if (m->ci_val == -1 && PyErr_Occurred()) return -2;
    Rd r = {p, p + n};
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = decode_metric(m, s, sn)) < 0) return rc;
        } else {
            READ(skip_field(&r, f, wt));
        }
    }
    return 0;
}

static int decode_resource(M *m, const uint8_t *p, Py_ssize_t n) {
    PyObject *res, *url;
    int rc = container_header(m, p, n, "ResourceMetrics", &res, &url);
    if (rc < 0) return rc;
    PyObject *rinfo = PyObject_CallFunctionObjArgs(m->res_fn, res, url, NULL);
    Py_DECREF(res);
    Py_DECREF(url);
    if (!rinfo) return -2;
    if (rinfo == Py_None) {
        Py_DECREF(rinfo);
        return PUNT;
    }
    Rd r = {p, p + n};
    rc = 0;
    while (r.p < r.end && rc == 0) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        if (rd_tag(&r, &key) < 0) {
            rc = PUNT;
            break;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) rc = PUNT;
            else rc = decode_scope(m, rinfo, s, sn);
        } else if (skip_field(&r, f, wt) < 0) {
            rc = PUNT;
        }
    }
    Py_DECREF(rinfo);
    return rc;
}

typedef struct {
    Py_ssize_t fixed[T_COUNT], points[T_COUNT], exemplars;
    AttrsMark a[T_COUNT], ea;
} MMark;

/* Set up the decoder state from the caller's state tuple (see decode_block's doc). */
static int m_init(M *m, PyObject *st, long long rec) {
    memset(m, 0, sizeof *m);
    if (PyTuple_GET_SIZE(st) != 12) {
        PyErr_SetString(PyExc_TypeError, "state must be a 12-tuple");
        return -1;
    }
    PyObject *pts = PyTuple_GET_ITEM(st, 0), *ats = PyTuple_GET_ITEM(st, 1);
    if (!PyTuple_Check(pts) || PyTuple_GET_SIZE(pts) != T_COUNT || !PyTuple_Check(ats) ||
        PyTuple_GET_SIZE(ats) != T_COUNT) {
        PyErr_SetString(PyExc_TypeError, "points and attrs must be 4-tuples");
        return -1;
    }
    static const Py_ssize_t NSHAPE[T_COUNT] = {2, 6, 11, 4};
    for (int i = 0; i < T_COUNT; i++) {
        PyObject *pr = PyTuple_GET_ITEM(pts, i);
        if (!PyTuple_Check(pr) || PyTuple_GET_SIZE(pr) != 2 || !PyByteArray_Check(PyTuple_GET_ITEM(pr, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(pr, 1)) || PyTuple_GET_SIZE(PyTuple_GET_ITEM(pr, 1)) != NSHAPE[i]) {
            PyErr_SetString(PyExc_TypeError, "point rows must be PointRows.lists(): (bytearray, shape lists)");
            return -1;
        }
        m->fixed[i] = PyTuple_GET_ITEM(pr, 0);
        m->shape[i] = PyTuple_GET_ITEM(pr, 1);
        Py_ssize_t rows = PyByteArray_GET_SIZE(m->fixed[i]) / 72;
        if (PyByteArray_GET_SIZE(m->fixed[i]) % 72) goto uneven;
        for (Py_ssize_t j = 0; j < NSHAPE[i]; j++) {
            PyObject *l = PyTuple_GET_ITEM(m->shape[i], j);
            if (!PyList_Check(l) || PyList_GET_SIZE(l) != rows) goto uneven;
        }
        if (get_attrs(PyTuple_GET_ITEM(ats, i), &m->attrs[i]) < 0) return -1;
    }
    m->exemplars = PyTuple_GET_ITEM(st, 2);
    if (!PyList_Check(m->exemplars) || get_attrs(PyTuple_GET_ITEM(st, 3), &m->ex_attrs) < 0) return -1;
    m->info_memo = PyTuple_GET_ITEM(st, 4);
    m->sid_memo = PyTuple_GET_ITEM(st, 5);
    m->res_fn = PyTuple_GET_ITEM(st, 6);
    m->scope_fn = PyTuple_GET_ITEM(st, 7);
    m->metric_fn = PyTuple_GET_ITEM(st, 8);
    m->series_fn = PyTuple_GET_ITEM(st, 9);
    m->c.fallback = PyTuple_GET_ITEM(st, 10);
    m->c.pending = PyTuple_GET_ITEM(st, 11);
    if (!PyDict_Check(m->info_memo) || !PyDict_Check(m->sid_memo) || !PyList_Check(m->c.pending) ||
        !PyCallable_Check(m->c.fallback)) {
        PyErr_SetString(PyExc_TypeError, "bad state");
        return -1;
    }
    m->rec = rec;
    return 0;
uneven:
    PyErr_SetString(PyExc_ValueError, "point rows: the packed columns and the shape lists differ in length");
    return -1;
}

static void m_free(M *m) {
    Py_XDECREF(m->c.err_msg);
    Py_XDECREF(m->ci);
    Py_XDECREF(m->rid);
    Py_XDECREF(m->svc);
    Py_XDECREF(m->ii);
    Py_XDECREF(m->name);
    PyMem_Free(m->ikey.p);
    PyMem_Free(m->skey.p);
    PyMem_Free(m->exs.v);
    PyMem_Free(m->md.v);
    PyMem_Free(m->u1.v);
    PyMem_Free(m->u2.v);
}

/* One ResourceMetrics block, all or nothing: 0 decoded; PUNT: nothing appended (the record index
 * is back where it was); -2: a Python error. */
static int block(M *m, const uint8_t *p, Py_ssize_t n) {
    MMark mark;
    long long rec0 = m->rec;
    for (int i = 0; i < T_COUNT; i++) {
        mark.fixed[i] = PyByteArray_GET_SIZE(m->fixed[i]);
        mark.points[i] = mark.fixed[i] / 72;
        attrs_mark(&m->attrs[i], &mark.a[i]);
    }
    mark.exemplars = PyList_GET_SIZE(m->exemplars);
    attrs_mark(&m->ex_attrs, &mark.ea);
    int rc = decode_resource(m, p, n);
    if (rc != PUNT) return rc;
    Py_CLEAR(m->c.err_msg);
    m->rec = rec0;
    for (int i = 0; i < T_COUNT; i++) {
        if (PyByteArray_Resize(m->fixed[i], mark.fixed[i]) < 0 || attrs_rollback(&m->attrs[i], &mark.a[i]) < 0)
            return -2;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(m->shape[i]); j++)
            if (truncate_list(PyTuple_GET_ITEM(m->shape[i], j), mark.points[i]) < 0) return -2;
    }
    if (truncate_list(m->exemplars, mark.exemplars) < 0 || attrs_rollback(&m->ex_attrs, &mark.ea) < 0) return -2;
    return PUNT;
}

PyDoc_STRVAR(decode_block_doc,
"decode_block(resource_metrics, first_record, state) -> int | None\n\n"
"Decode one serialised ResourceMetrics into a MetricBatch's lists. state is the tuple\n"
"(points, attrs, exemplars, exemplar_attrs, info_memo, sid_memo, res_fn, scope_fn, metric_fn,\n"
" series_fn, fallback, pending): points the four point-row lists (number, histogram, exponential\n"
"histogram, summary), attrs their four AttrCols.lists(), info_memo and sid_memo the batch's memo\n"
"dicts, res_fn(resource, schema_url) -> resource info or None, scope_fn(resource info, scope,\n"
"schema_url) -> (context index, resource_id, service_name) or None, metric_fn(name, description,\n"
"unit, type, temporality, monotonic, [metadata KeyValue bytes]) -> metric table index or None,\n"
"series_fn(table, attribute start, context index, metric index) -> series_id, fallback(bytes) ->\n"
"(tag, text, unknown field names) for composite AnyValues, pending a list that receives the names\n"
"of unknown fields. Returns the record index after the block's last point, or None when the block\n"
"is not the plain common case (nothing appended then; decode it with the Python decoder).");

static PyObject *decode_block(PyObject *self, PyObject *args) {
    Py_buffer buf;
    long long rec;
    PyObject *st, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LO!", &buf, &rec, &PyTuple_Type, &st)) return NULL;
    M m;
    if (m_init(&m, st, rec) == 0) {
        int rc = block(&m, buf.buf, buf.len);
        if (rc == PUNT) {
            Py_INCREF(Py_None);
            result = Py_None;
        } else if (rc == 0) {
            result = PyLong_FromLongLong(m.rec);
        }
    }
    m_free(&m);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(decode_request_doc,
"decode_request(message, first_record, state, unknown, python_block) -> int | None\n\n"
"Decode a whole MetricsData / ExportMetricsServiceRequest whose top level is nothing but\n"
"well-formed ResourceMetrics blocks (field 1); for any other message, return None at once\n"
"without touching anything (decode it block by block). Each block goes through decode_block;\n"
"the unknown fields of a decoded block are added to the dict `unknown`, and a block it hands\n"
"back is given to python_block(block_index, block_bytes, record_index), which decodes it and\n"
"returns the record index after it. state as for decode_block. Returns the record index after\n"
"the last record.");

static PyObject *decode_request(PyObject *self, PyObject *args) {
    Py_buffer buf;
    long long rec;
    PyObject *st, *unknown, *pyblock, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LO!O!O", &buf, &rec, &PyTuple_Type, &st, &PyDict_Type, &unknown, &pyblock))
        return NULL;
    const uint8_t *p0 = buf.buf, *end = p0 + buf.len;
    Rd r = {p0, end};
    while (r.p < r.end) { /* the top level: only well-formed field-1 blocks */
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        if (rd_tag(&r, &key) < 0 || key != ((1 << 3) | 2) || rd_bytes(&r, &s, &sn) < 0) {
            PyBuffer_Release(&buf);
            Py_RETURN_NONE;
        }
    }
    M m;
    if (m_init(&m, st, rec) < 0) goto done;
    m.c.unknown = unknown;
    r = (Rd){p0, end};
    Py_ssize_t ri = 0;
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        rd_tag(&r, &key);
        rd_bytes(&r, &s, &sn);
        int rc = block(&m, s, sn);
        if (rc == -2) goto done;
        if (flush_unknown(&m.c, rc == 0) < 0) goto done;
        if (rc == PUNT) {
            PyObject *got = PyObject_CallFunction(pyblock, "ny#L", ri, (const char *)s, sn, m.rec);
            if (!got) goto done;
            m.rec = PyLong_AsLongLong(got);
            Py_DECREF(got);
            if (m.rec == -1 && PyErr_Occurred()) goto done;
        }
        ri++;
    }
    result = PyLong_FromLongLong(m.rec);
done:
    m_free(&m);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_block", decode_block, METH_VARARGS, decode_block_doc},
    {"decode_request", decode_request, METH_VARARGS, decode_request_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire_metrics", "OTLP protobuf metric point decoding for ingest.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire_metrics(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "_wire_metrics supports little-endian hosts only");
        return NULL;
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
    S_short[T_NUMBER] = PyUnicode_InternFromString("number");
    S_short[T_HIST] = PyUnicode_InternFromString("histogram");
    S_short[T_EXP] = PyUnicode_InternFromString("exponential_histogram");
    S_short[T_SUMMARY] = PyUnicode_InternFromString("summary");
    static const char *mtypes[5] = {"gauge", "sum", "histogram", "exponential_histogram", "summary"};
    for (int i = 0; i < 5; i++)
        if (!(S_mtype[i] = PyUnicode_InternFromString(mtypes[i]))) return NULL;
    if (!S_string || !S_bool || !S_int || !S_double || !S_empty || !S_true || !S_false || !S_nan || !S_inf ||
        !S_ninf || !S_empty_str || !S_short[0] || !S_short[1] || !S_short[2] || !S_short[3])
        return NULL;
    return PyModule_Create(&module);
}
