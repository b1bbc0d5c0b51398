/*
 * _wire_json.h: the OTLP/JSON text tokenizer shared by _wire.c (spans and log records) and
 * _wire_metrics.c (metric points): a cursor over the text (T), whitespace, punctuation, strings
 * (raw spans, or decoded with their escapes), object keys, numbers, ids, simple AnyValues,
 * attribute lists (tattrs_each, which hands each attribute to the includer's writer), skipping
 * and raw capture of values, and arrays.
 *
 * The contract of every reader: 0 when it read the common form, FALLBACK (1) at the first thing
 * outside it (the caller then gives up on the whole message, and the dict decoder, where every
 * rule and message lives, decodes it), -2 on a Python error (raised). Like _wire_pb.h, every
 * function is static and each extension compiles its own copy. Include it after _wire_pb.h.
 */
#ifndef OTLP_AIOPS_WIRE_JSON_H
#define OTLP_AIOPS_WIRE_JSON_H

#include "_wire_pb.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define FALLBACK 1 /* "let Python decode this record" */

/* A hex digit's value + 1 (0: not a hex digit), for every byte. */
static const uint8_t HEX1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};

static int hexval(int ch) { return (int)HEX1[(uint8_t)ch] - 1; }

/* want bytes from 2*want hex digits at s into b: -1 if a digit is not hex, else whether any byte is
 * not zero (an all-zero id is None). */
static int hex_id(const uint8_t *s, Py_ssize_t want, uint8_t *b) {
    int nonzero = 0;
    for (Py_ssize_t i = 0; i < want; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        b[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= b[i];
    }
    return nonzero != 0;
}

typedef struct {
    const uint8_t *p, *end;
} T;

static void tws(T *t) {
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r')) t->p++;
}

static int tpeek(T *t) {
    tws(t);
    return t->p < t->end ? *t->p : -1;
}

static int tch(T *t, uint8_t c) {
    if (tpeek(t) != c) return FALLBACK;
    t->p++;
    return 0;
}

/* After a value inside an object or array: 1 if another member follows (','), 0 at the closer. */
static int tnext(T *t, uint8_t closer) {
    int c = tpeek(t);
    if (c == ',') {
        t->p++;
        return 1;
    }
    if (c == closer) {
        t->p++;
        return 0;
    }
    return -FALLBACK;
}

static int tnull(T *t) {
    if (tpeek(t) == 'n' && t->end - t->p >= 4 && memcmp(t->p, "null", 4) == 0) {
        t->p += 4;
        return 1;
    }
    return 0;
}

/* The raw bytes of a string at the cursor (between the quotes); *esc when it holds escapes. */
static int tstr_span(T *t, const uint8_t **s, Py_ssize_t *n, int *esc) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    if (tch(t, '"')) return FALLBACK;
    const uint8_t *a = t->p;
    *esc = 0;
    for (;;) {
        /* eight bytes at a time while none is '"', '\\' or a control character (< 0x20): a zero
         * byte of w ^ ('"' x 8), of w ^ ('\\' x 8), or a byte below 0x20, sets its high bit */
#if defined(__SSE2__) && defined(__GNUC__)
        /* sixteen bytes at a time with SSE2 (every x86-64 has it): a byte that is '"', '\\' or
         * at most 0x1F sets its bit of the mask; step straight to the first */
        while (t->end - t->p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)t->p);
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                                       _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1F)), _mm_set1_epi8(0x1F)));
            int mask = _mm_movemask_epi8(hit);
            if (mask) {
                t->p += __builtin_ctz((unsigned)mask);
                goto special;
            }
            t->p += 16;
        }
#endif
        while (t->end - t->p >= 8) {
            uint64_t w, q, b, m;
            memcpy(&w, t->p, 8);
            q = w ^ (ones * '"');
            b = w ^ (ones * '\\');
            m = (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs;
            if (m) {
                /* the lowest flagged byte is a real match (a borrow only flags bytes above one);
                 * step straight to it (little-endian: the lowest byte comes first) */
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                t->p += __builtin_ctzll(m) >> 3;
#endif
                break;
            }
            t->p += 8;
        }
#if defined(__SSE2__) && defined(__GNUC__)
    special:
#endif
        if (t->p >= t->end) return FALLBACK;
        uint8_t c = *t->p;
        if (c == '"') {
            *s = a;
            *n = t->p - a;
            t->p++;
            return 0;
        }
        if (c == '\\') {
            *esc = 1;
            t->p += 2;
            continue;
        }
        if (c < 0x20) return FALLBACK;
        t->p++;
    }
}

static void put_utf8(uint8_t **o, uint32_t cp) {
    uint8_t *q = *o;
    if (cp < 0x80) {
        *q++ = (uint8_t)cp;
    } else if (cp < 0x800) {
        *q++ = (uint8_t)(0xC0 | cp >> 6);
        *q++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (uint8_t)(0xE0 | cp >> 12);
        *q++ = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        *q++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (uint8_t)(0xF0 | cp >> 18);
        *q++ = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        *q++ = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        *q++ = (uint8_t)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

static int hex4(const uint8_t *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return 0;
}

/* A JSON string value as a new str (escapes decoded; lone surrogates and bad UTF-8 give up). */
static int tstr(T *t, PyObject **out) {
    const uint8_t *s;
    Py_ssize_t n;
    int esc;
    if (tstr_span(t, &s, &n, &esc)) return FALLBACK;
    if (!esc) {
        if (n == 0) {
            Py_INCREF(S_empty_str);
            *out = S_empty_str;
            return 0;
        }
        *out = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    } else {
        uint8_t *buf = PyMem_Malloc(n ? n : 1), *o = buf;
        if (!buf) {
            PyErr_NoMemory();
            return -2;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] != '\\') {
                *o++ = s[i];
                continue;
            }
            if (++i >= n) goto bad;
            uint32_t cp, lo;
            switch (s[i]) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u':
                if (i + 4 >= n || hex4(s + i + 1, &cp) < 0) goto bad;
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
                    if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' || hex4(s + i + 3, &lo) < 0 || lo < 0xDC00 ||
                        lo >= 0xE000)
                        goto bad;
                    i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    goto bad;
                }
                put_utf8(&o, cp);
                break;
            default:
                goto bad;
            }
        }
        *out = PyUnicode_DecodeUTF8((const char *)buf, o - buf, NULL);
        PyMem_Free(buf);
        goto decoded;
    bad:
        PyMem_Free(buf);
        return FALLBACK;
    }
decoded:
    if (*out) return 0;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return -2;
    PyErr_Clear();
    return FALLBACK;
}

/* An object key without escapes, and the ':' after it. */
static int tkey(T *t, const uint8_t **s, Py_ssize_t *n) {
    int esc;
    if (tstr_span(t, s, n, &esc) || esc || tch(t, ':')) return FALLBACK;
    return 0;
}

#define KEY(lit) (kn == (Py_ssize_t)(sizeof(lit) - 1) && memcmp(ks, lit, sizeof(lit) - 1) == 0)

static int tnum(T *t, const uint8_t **s, Py_ssize_t *n, int *is_int);

/* Skip any JSON value (strings, numbers, literals, nested objects and arrays). */
static int tskip(T *t) {
    int c = tpeek(t);
    if (c == '"') {
        const uint8_t *s;
        Py_ssize_t n;
        int esc;
        return tstr_span(t, &s, &n, &esc);
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        while (t->p < t->end) {
            uint8_t ch = *t->p;
            if (ch == '"') {
                const uint8_t *s;
                Py_ssize_t n;
                int esc;
                if (tstr_span(t, &s, &n, &esc)) return FALLBACK;
                continue;
            }
            t->p++;
            if (ch == '{' || ch == '[') depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0) return 0;
        }
        return FALLBACK;
    }
    static const char *lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(t->end - t->p) >= n && memcmp(t->p, lits[i], n) == 0) {
            t->p += n;
            return 0;
        }
    }
    const uint8_t *s;
    Py_ssize_t n;
    int is_int;
    return tnum(t, &s, &n, &is_int);
}

/* A number token: its bytes, and whether it is a plain integer (no fraction, no exponent). */
static int tnum(T *t, const uint8_t **s, Py_ssize_t *n, int *is_int) {
    tws(t);
    const uint8_t *a = t->p;
    *is_int = 1;
    if (t->p < t->end && *t->p == '-') t->p++;
    const uint8_t *d = t->p;
    while (t->p < t->end && *t->p >= '0' && *t->p <= '9') t->p++;
    if (t->p == d || (t->p - d > 1 && *d == '0')) return FALLBACK; /* no digits, or a leading zero */
    if (t->p < t->end && *t->p == '.') {
        *is_int = 0;
        const uint8_t *f = ++t->p;
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9') t->p++;
        if (t->p == f) return FALLBACK;
    }
    if (t->p < t->end && (*t->p == 'e' || *t->p == 'E')) {
        *is_int = 0;
        t->p++;
        if (t->p < t->end && (*t->p == '+' || *t->p == '-')) t->p++;
        const uint8_t *e = t->p;
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9') t->p++;
        if (t->p == e) return FALLBACK;
    }
    *s = a;
    *n = t->p - a;
    return 0;
}

static int digits_u64(const uint8_t *s, Py_ssize_t n, uint64_t max, uint64_t *out) {
    if (n < 1 || n > 19) return FALLBACK;
    uint64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return FALLBACK;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return FALLBACK;
    *out = v;
    return 0;
}

/* A non-negative integer up to max: a JSON integer, or (allow_str) a string of digits. */
static int tuint(T *t, uint64_t max, int allow_str, uint64_t *out) {
    if (tnull(t)) {
        *out = 0;
        return 0;
    }
    const uint8_t *s;
    Py_ssize_t n;
    if (tpeek(t) == '"') {
        int esc;
        if (!allow_str || tstr_span(t, &s, &n, &esc) || esc) return FALLBACK;
        return digits_u64(s, n, max, out);
    }
    int is_int;
    if (tnum(t, &s, &n, &is_int) || !is_int || *s == '-') return FALLBACK;
    return digits_u64(s, n, max, out);
}

/* A hex id of exactly 2*want characters (None when absent, empty or all zero). */
/* The id's bytes into b (16 bytes room); *present is 0 for None (absent, empty or all zero). */
static int tid_raw(T *t, Py_ssize_t want, uint8_t *b, int *present) {
    *present = 0;
    if (tnull(t)) return 0;
    const uint8_t *s;
    Py_ssize_t n;
    int esc;
    if (tstr_span(t, &s, &n, &esc) || esc) return FALLBACK;
    if (n == 0) return 0;
    if (n != 2 * want) return FALLBACK;
    int nonzero = hex_id(s, want, b);
    if (nonzero < 0) return FALLBACK;
    *present = nonzero;
    return 0;
}

static int tid(T *t, Py_ssize_t want, PyObject **out) {
    uint8_t b[16];
    int present;
    int rc = tid_raw(t, want, b, &present);
    if (rc) return rc;
    if (!present) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    *out = PyBytes_FromStringAndSize((const char *)b, want);
    return *out ? 0 : -2;
}

/* A string for a column: its bytes (*s, *n) when it has no escapes and is valid UTF-8, else the
 * str tstr makes of it (*obj); FALLBACK as tstr. */
static int tstr_col(T *t, const uint8_t **s, Py_ssize_t *n, PyObject **obj) {
    const uint8_t *save = t->p;
    int esc;
    *obj = NULL;
    if (!tstr_span(t, s, n, &esc) && !esc && utf8_valid(*s, *n)) return 0;
    t->p = save;
    *s = NULL;
    return tstr(t, obj);
}

/* An optional string: null / "" -> None. */
static int topt_str(T *t, PyObject **out) {
    if (tnull(t)) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    int rc = tstr(t, out);
    if (rc) return rc;
    if (PyUnicode_GET_LENGTH(*out) == 0) {
        Py_DECREF(*out);
        Py_INCREF(Py_None);
        *out = Py_None;
    }
    return 0;
}

/* The double a number's text (at most 64 bytes) stands for, as Python's float() reads it. */
static int text_double(const uint8_t *s, Py_ssize_t n, double *out) {
    char num[65];
    if (n > 64) return FALLBACK;
    memcpy(num, s, n);
    num[n] = 0;
    *out = PyOS_string_to_double(num, NULL, NULL);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return FALLBACK;
    }
    return 0;
}

/* A simple AnyValue object {stringValue|intValue|boolValue|doubleValue: x} as (tag, text); both
 * stay NULL unless it succeeds. */
/* num (room for 64 bytes, or NULL): where an int, bool or double's text goes instead of a str
 * (*text then stays NULL). */
static int tany(T *t, PyObject **tag, PyObject **text, char *num_out) {
    const uint8_t *ks, *s;
    Py_ssize_t kn, n;
    *tag = *text = NULL;
    if (tch(t, '{') || tkey(t, &ks, &kn)) return FALLBACK;
    int rc;
    if (KEY("stringValue")) {
        if ((rc = tstr(t, text))) return rc;
        *tag = S_string;
    } else if (KEY("intValue")) {
        int neg = 0, is_int = 1;
        if (tpeek(t) == '"') {
            int esc;
            if (tstr_span(t, &s, &n, &esc) || esc) return FALLBACK;
        } else if (tnum(t, &s, &n, &is_int) || !is_int) {
            return FALLBACK;
        }
        if (n > 0 && *s == '-') {
            neg = 1;
            s++;
            n--;
        }
        uint64_t u;
        if (n > 18 || digits_u64(s, n, UINT64_MAX, &u)) return FALLBACK; /* longer: Python checks the range */
        if (num_out) fmt_i64(num_out, neg ? -(int64_t)u : (int64_t)u);
        else if (!(*text = PyUnicode_FromFormat("%lld", neg ? -(long long)u : (long long)u))) return -2;
        *tag = S_int;
    } else if (KEY("boolValue")) {
        tws(t);
        if (t->end - t->p >= 4 && memcmp(t->p, "true", 4) == 0) {
            t->p += 4;
            *text = S_true;
        } else if (t->end - t->p >= 5 && memcmp(t->p, "false", 5) == 0) {
            t->p += 5;
            *text = S_false;
        } else {
            return FALLBACK;
        }
        if (num_out) {
            strcpy(num_out, *text == S_true ? "true" : "false");
            *text = NULL;
        } else {
            Py_INCREF(*text);
        }
        *tag = S_bool;
    } else if (KEY("doubleValue")) {
        int is_int;
        double d;
        if (tnum(t, &s, &n, &is_int) || text_double(s, n, &d) || !isfinite(d)) return FALLBACK;
        char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!r) return -2;
        if (num_out && strlen(r) < 64) strcpy(num_out, r);
        else *text = PyUnicode_FromString(r);
        PyMem_Free(r);
        if (!*text && !(num_out && num_out[0])) return -2;
        *tag = S_double;
    } else {
        return FALLBACK;
    }
    Py_INCREF(*tag);
    if (tch(t, '}')) {
        Py_CLEAR(*tag);
        Py_CLEAR(*text);
        return FALLBACK;
    }
    return 0;
}

/* One attribute entry {"key": ..., "value": {...}} as tattrs_each reads it: the key as bytes (no
 * escapes, valid UTF-8) or a str; the value's tag, and the value as bytes (a plain stringValue),
 * a str, or the text of an int, bool or double (num). References are the reader's. */
typedef struct {
    const uint8_t *kbs; /* the key without escapes: its bytes */
    Py_ssize_t kbn;
    PyObject *key;
    PyObject *tag;
    const uint8_t *fs; /* a {"stringValue": "..."} without escapes: its bytes */
    Py_ssize_t fn;
    PyObject *text;
    char num[64]; /* an int, bool or double value's text (tany) */
} TAttr;

/* Write one attribute (0, or -2 on a Python error). */
typedef int (*tattr_push)(void *a, TAttr *e);

/* An attribute list (null, or an array of {"key", "value"} objects), each entry through push. */
static int tattrs_each(T *t, void *a, tattr_push push) {
    if (tnull(t)) return 0;
    if (tch(t, '[')) return FALLBACK;
    if (tpeek(t) == ']') {
        t->p++;
        return 0;
    }
    int more;
    do {
        const uint8_t *ks;
        Py_ssize_t kn;
        TAttr e;
        e.kbs = e.fs = NULL;
        e.kbn = e.fn = 0;
        e.key = e.tag = e.text = NULL;
        e.num[0] = 0;
        int rc = tch(t, '{');
        for (int i = 0; i < 2 && !rc; i++) {
            if (i == 1 && (rc = tch(t, ','))) break;
            if ((rc = tkey(t, &ks, &kn))) break;
            if (KEY("key") && !e.key && !e.kbs) {
                rc = tstr_col(t, &e.kbs, &e.kbn, &e.key);
                if (!rc && !e.key && !e.kbs) e.kbs = (const uint8_t *)"";
            } else if (KEY("value") && !e.tag) {
                const uint8_t *save = t->p, *vs;
                Py_ssize_t vn;
                int esc;
                if (!tch(t, '{') && !tkey(t, &vs, &vn) && vn == 11 && memcmp(vs, "stringValue", 11) == 0 &&
                    !tstr_span(t, &e.fs, &e.fn, &esc) && !esc && utf8_valid(e.fs, e.fn) && !tch(t, '}')) {
                    e.tag = S_string;
                    Py_INCREF(e.tag);
                } else {
                    e.fs = NULL;
                    t->p = save;
                    e.num[0] = 0;
                    rc = tany(t, &e.tag, &e.text, e.num);
                }
            } else {
                rc = FALLBACK;
            }
        }
        if (!rc) rc = tch(t, '}');
        if (!rc) rc = push(a, &e);
        Py_XDECREF(e.key);
        Py_XDECREF(e.tag);
        Py_XDECREF(e.text);
        if (rc) return rc;
        more = tnext(t, ']');
        if (more < 0) return FALLBACK;
    } while (more);
    return 0;
}

/* The raw text of a value (for resource and scope objects, which Python decodes and caches). */
static int traw(T *t, PyObject **out) {
    tws(t);
    const uint8_t *a = t->p;
    int rc = tskip(t);
    if (rc) return rc;
    *out = PyBytes_FromStringAndSize((const char *)a, t->p - a);
    return *out ? 0 : -2;
}

/* Each element of an array through fn. */
static int tarray(T *t, int (*fn)(T *, void *), void *arg) {
    int more, rc;
    if (tch(t, '[')) return FALLBACK;
    if (tpeek(t) == ']') {
        t->p++;
        return 0;
    }
    do {
        if ((rc = fn(t, arg))) return rc;
        more = tnext(t, ']');
        if (more < 0) return FALLBACK;
    } while (more);
    return 0;
}

/* The members of an object, in a reader with `int more`, `const uint8_t *ks`, `Py_ssize_t kn` and
 * the labels of CHECK: TOBJ_BEGIN(t) opens it and reads each key into ks/kn, the code up to
 * TOBJ_END(t) reads its value. */
#define TOBJ_BEGIN(t)                                                                                                \
    CHECK(tch(t, '{'));                                                                                              \
    if (tpeek(t) == '}') {                                                                                           \
        t->p++;                                                                                                      \
    } else {                                                                                                         \
        do {                                                                                                         \
            CHECK(tkey(t, &ks, &kn));
#define TOBJ_END(t)                                                                                                  \
            more = tnext(t, '}');                                                                                    \
            if (more < 0) goto fallback;                                                                             \
        } while (more);                                                                                              \
    }

#define SEEN(bit)                                                                                                    \
    do {                                                                                                             \
        if (seen & ((uint64_t)1 << (bit))) goto fallback;                                                            \
        seen |= (uint64_t)1 << (bit);                                                                                \
    } while (0)
#define CHECK(x)                                                                                                     \
    do {                                                                                                             \
        int rc_ = (x);                                                                                               \
        if (rc_ == -2) goto pyerr;                                                                                   \
        if (rc_) goto fallback;                                                                                      \
    } while (0)

#endif /* OTLP_AIOPS_WIRE_JSON_H */
