/* The wikitext cleaner of wit.queries.wikipedia, compiled.
 *
 * clean(utf8: bytes) -> bytes runs the same passes, in the same order, as
 * wikipedia.clean_wikitext_reference (the regular expressions there are the specification),
 * except the final html.unescape, which the caller applies. Every pass scans left to right and
 * replaces non-overlapping matches exactly as re.sub does with that pass's pattern (ASCII
 * semantics: \s is [ \t\n\r\f\v], \b and case folding are ASCII-only). All delimiters are
 * ASCII, so working on UTF-8 bytes never splits a character. tests/unit/test_wikiclean.py
 * checks the output equals the reference on real dump pages and on random markup.
 *
 * Every pass writes at most as many bytes as it reads, so two buffers of the input's size
 * (plus the leading newline the line rules need) are enough.
 *
 * tokens(utf8, offsets) is wit.text.normalize.token_stream's tokenisation of a whole batch in one
 * pass (tests/unit/test_normalize.py checks it against the numpy path and the per-string rules).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef Py_ssize_t ssize;

static inline int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline int is_alnum(unsigned char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
static inline int is_word(unsigned char c) { return is_alnum(c) || c == '_'; }
static inline int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }

/* ASCII case-insensitive equality of s[0:len] with the lower-case word w. */
static int ieq(const char *s, const char *w, ssize len) {
    for (ssize k = 0; k < len; k++)
        if (lower((unsigned char)s[k]) != (unsigned char)w[k]) return 0;
    return 1;
}

/* First position >= i of needle (length m >= 1) in s[0:n], or -1. */
static ssize find(const char *s, ssize n, ssize i, const char *needle, ssize m) {
    while (i + m <= n) {
        const char *p = memchr(s + i, needle[0], n - i - m + 1);
        if (!p) return -1;
        if (memcmp(p, needle, m) == 0) return p - s;
        i = p - s + 1;
    }
    return -1;
}

/* Output cursor. */
typedef struct { char *o; ssize w; } out_t;
static inline void emit(out_t *out, const char *p, ssize len) {
    if (len > 0) { memcpy(out->o + out->w, p, len); out->w += len; }
}

/* What replaces a match: the literal `lit` (NUL-terminated, often "") then s[lo:hi]. `memo` is
 * the pass's scratch, which keeps input full of unclosed markup linear instead of quadratic.
 * Slots 0-21 (one per dropped element name), MEMO_GT and MEMO_EXTERNAL: the smallest position
 * from which that forward search is known to find nothing. */
#define MEMO_GT 22       /* no '>' (the end of a dropped element's open tag) */
#define MEMO_EXTERNAL 23 /* no ']' (the end of an external link) */
/* Where the last scan stopped, for scans that many matches would otherwise repeat: the first
 * '>' at or after GT_FROM is at GT_AT; the first blank or ']' at or after URL_FROM is at URL_END,
 * and the blanks after it end at URL_TEXT. Match starts only grow within a pass, so a later
 * start between FROM and the stop finds the same stop. */
#define MEMO_GT_FROM 24
#define MEMO_GT_AT 25
#define MEMO_URL_FROM 26
#define MEMO_URL_END 27
#define MEMO_URL_TEXT 28
#define MEMO_SLOTS 29
typedef struct { const char *lit; ssize lo, hi; ssize *memo; } repl_t;

/* A match finder: given s[0:n] and a position i holding the trigger byte, the end of the
 * match starting at i, or -1; on a match it may set the replacement (default: ""). */
typedef ssize (*match_fn)(const char *s, ssize n, ssize i, repl_t *r);

/* Generic re.sub loop: at each occurrence of `trigger`, try `match`; on a match emit its
 * replacement and go on after it. */
static ssize sub(const char *s, ssize n, char *o, char trigger, match_fn match, ssize *count) {
    out_t out = {o, 0};
    ssize i = 0, done = 0, hits = 0, memo[MEMO_SLOTS];
    for (int k = 0; k < MEMO_SLOTS; k++) memo[k] = n + 1;  /* nothing remembered yet */
    while (i < n) {
        const char *p = memchr(s + i, trigger, n - i);
        if (!p) break;
        i = p - s;
        repl_t r = {"", 0, 0, memo};
        ssize end = match(s, n, i, &r);
        if (end < 0) { i++; continue; }
        emit(&out, s + done, i - done);
        emit(&out, r.lit, (ssize)strlen(r.lit));
        emit(&out, s + r.lo, r.hi - r.lo);
        done = i = end;
        hits++;
    }
    emit(&out, s + done, n - done);
    if (count) *count = hits;
    return out.w;
}

/* <!--.*?(?:-->|\Z) -> "" */
static ssize m_comment(const char *s, ssize n, ssize i, repl_t *r) {
    if (i + 4 > n || memcmp(s + i, "<!--", 4) != 0) return -1;
    ssize e = find(s, n, i + 4, "-->", 3);
    return e < 0 ? n : e + 3;
}

/* <(NAME)\b[^>]*?(?:/>|>[^<]*(?:<(?!/\1\s*>)[^<]*)*</\1\s*>)  (re.I) -> "" */
static const char *const DROPPED[] = {
    "ref", "math", "chem", "ce", "gallery", "timeline", "score", "syntaxhighlight", "source",
    "graph", "mapframe", "maplink", "templatedata", "imagemap", "hiero", "inputbox",
    "categorytree", "references", NULL};
_Static_assert(sizeof(DROPPED) / sizeof(DROPPED[0]) - 1 <= MEMO_GT, "a memo slot per element name");

static ssize m_dropped(const char *s, ssize n, ssize i, repl_t *r) {
    for (int slot = 0; DROPPED[slot]; slot++) {
        const char *const *name = DROPPED + slot;
        ssize len = (ssize)strlen(*name), k = i + 1 + len;
        if (k > n || !ieq(s + i + 1, *name, len) || (k < n && is_word((unsigned char)s[k])))
            continue;
        /* At most one name passes the prefix and boundary test at a position. The lazy
         * attributes end at the first '>' after k: "/>" if a '/' at or after k precedes it. */
        if (k >= r->memo[MEMO_GT]) return -1;
        ssize g;
        if (k >= r->memo[MEMO_GT_FROM] && k <= r->memo[MEMO_GT_AT]) {
            g = r->memo[MEMO_GT_AT];
        } else {
            const char *p = memchr(s + k, '>', n - k);
            if (!p) {
                r->memo[MEMO_GT] = k;  /* no '>' after k */
                return -1;
            }
            g = p - s;
        }
        r->memo[MEMO_GT_FROM] = k, r->memo[MEMO_GT_AT] = g;
        if (g - 1 >= k && s[g - 1] == '/') return g + 1;
        ssize m = g + 1;  /* the body runs to the first close tag, if there is one */
        if (m >= r->memo[slot]) return -1;  /* no close tag after m */
        for (;;) {
            const char *p = memchr(s + m, '<', n - m);
            if (!p) {
                r->memo[slot] = g + 1;
                return -1;
            }
            ssize q = p - s;
            if (q + 2 + len <= n && s[q + 1] == '/' && ieq(s + q + 2, *name, len)) {
                ssize e = q + 2 + len;
                while (e < n && is_space((unsigned char)s[e])) e++;
                if (e < n && s[e] == '>') return e + 1;
            }
            m = q + 1;
        }
    }
    return -1;
}

/* </?[A-Za-z][A-Za-z0-9]*\b[^<>]*> -> " " */
static ssize m_tag(const char *s, ssize n, ssize i, repl_t *r) {
    ssize j = i + 1;
    if (j < n && s[j] == '/') j++;
    if (j >= n || !is_alpha((unsigned char)s[j])) return -1;
    while (j < n && is_alnum((unsigned char)s[j])) j++;
    if (j < n && s[j] == '_') return -1;
    while (j < n && s[j] != '<' && s[j] != '>') j++;
    if (j >= n || s[j] != '>') return -1;
    r->lit = " ";
    return j + 1;
}

/* \{\{[^{}]*\}\} -> "" */
static ssize m_template(const char *s, ssize n, ssize i, repl_t *r) {
    if (i + 1 >= n || s[i + 1] != '{') return -1;
    ssize k = i + 2;
    while (k < n && s[k] != '{' && s[k] != '}') k++;
    return (k + 1 < n && s[k] == '}' && s[k + 1] == '}') ? k + 2 : -1;
}

/* \{\|  (any text without "{|", up to the first)  \|\} -> "" */
static ssize m_table(const char *s, ssize n, ssize i, repl_t *r) {
    if (i + 1 >= n || s[i + 1] != '|') return -1;
    for (ssize k = i + 2; k + 1 < n; k++) {
        if (s[k] == '|' && s[k + 1] == '}') return k + 2;
        if (s[k] == '{' && s[k + 1] == '|') return -1;
    }
    return -1;
}

/* Strip ASCII white space from [*a, *b). */
static void strip(const char *s, ssize *a, ssize *b) {
    while (*a < *b && is_space((unsigned char)s[*a])) (*a)++;
    while (*b > *a && is_space((unsigned char)s[*b - 1])) (*b)--;
}

/* ^[a-z]{2,3}(?:-[a-z]+)*$ on s[a:b] */
static int is_interwiki(const char *s, ssize a, ssize b) {
    ssize k = a;
    while (k < b && is_lower((unsigned char)s[k])) k++;
    if (k - a < 2 || k - a > 3) return 0;
    while (k < b) {
        if (s[k] != '-') return 0;
        ssize j = ++k;
        while (k < b && is_lower((unsigned char)s[k])) k++;
        if (k == j) return 0;
    }
    return 1;
}

static int dropped_namespace(const char *s, ssize a, ssize b) {
    static const char *const ns[] = {"file", "image", "media", "category", NULL};
    for (const char *const *w = ns; *w; w++) {
        ssize len = (ssize)strlen(*w);
        if (b - a == len && ieq(s + a, *w, len)) return 1;
    }
    return 0;
}

/* The visible text of [[s[a:b]]] as [*lo, *hi) (wikipedia._link_text / _replace_links). */
static void link_text(const char *s, ssize a, ssize b, ssize *lo, ssize *hi) {
    const char *bar = memchr(s + a, '|', b - a);
    const char *colon = memchr(s + a, ':', b - a);
    if (!bar && !colon) {
        strip(s, &a, &b);
        *lo = a, *hi = b;
        return;
    }
    ssize ta = a, tb = bar ? bar - s : b;
    strip(s, &ta, &tb);
    const char *tcolon = ta < tb ? memchr(s + ta, ':', tb - ta) : NULL;
    if (tcolon && s[ta] != ':') {
        ssize pa = ta, pb = tcolon - s;
        strip(s, &pa, &pb);
        if (dropped_namespace(s, pa, pb) || (!bar && is_interwiki(s, pa, pb))) {
            *lo = *hi = a;
            return;
        }
    }
    if (bar) {
        ssize la = bar - s + 1, lb = b;
        strip(s, &la, &lb);
        if (lb > la) {
            *lo = bar - s + 1, *hi = b;
            return;
        }
    }
    while (ta < tb && s[ta] == ':') ta++;
    *lo = ta, *hi = tb;
}

/* \[\[([^\[\]]*)\]\] -> its visible text */
static ssize m_link(const char *s, ssize n, ssize i, repl_t *r) {
    if (i + 1 >= n || s[i + 1] != '[') return -1;
    ssize k = i + 2;
    while (k < n && s[k] != '[' && s[k] != ']') k++;
    if (!(k + 1 < n && s[k] == ']' && s[k + 1] == ']')) return -1;
    link_text(s, i + 2, k, &r->lo, &r->hi);
    return k + 2;
}

/* \[(?:https?:|ftp:|//)[^\s\]]*\s*([^\]]*)\] -> group 1 */
static ssize m_external(const char *s, ssize n, ssize i, repl_t *r) {
    ssize j = i + 1;
    if (j + 6 <= n && memcmp(s + j, "https:", 6) == 0) j += 6;
    else if (j + 5 <= n && memcmp(s + j, "http:", 5) == 0) j += 5;
    else if (j + 4 <= n && memcmp(s + j, "ftp:", 4) == 0) j += 4;
    else if (j + 2 <= n && memcmp(s + j, "//", 2) == 0) j += 2;
    else return -1;
    if (j >= r->memo[MEMO_URL_FROM] && j <= r->memo[MEMO_URL_END]) {
        j = r->memo[MEMO_URL_TEXT];
    } else {
        r->memo[MEMO_URL_FROM] = j;
        while (j < n && s[j] != ']' && !is_space((unsigned char)s[j])) j++;
        r->memo[MEMO_URL_END] = j;
        while (j < n && is_space((unsigned char)s[j])) j++;
        r->memo[MEMO_URL_TEXT] = j;
    }
    if (j >= r->memo[MEMO_EXTERNAL]) return -1;  /* no ']' after j */
    const char *close = memchr(s + j, ']', n - j);
    if (!close) {
        r->memo[MEMO_EXTERNAL] = j;
        return -1;
    }
    r->lo = j;
    r->hi = close - s;
    return close - s + 1;
}

/* [^\s<>\[\]{}|"]: a byte of a bare URL (UTF-8 continuation and lead bytes included). */
static inline int is_url_byte(unsigned char c) {
    return !is_space(c) && c != '<' && c != '>' && c != '[' && c != ']' && c != '{' && c != '}' && c != '|' &&
           c != '"';
}

/* (?:https?|ftp)://U*|//U+|\bwww\.U+  (re.I, re.A; U: is_url_byte) -> "". Every match holds a
 * trigger at a fixed offset from its start: the first '/' of "//" (0 to 6 bytes in) or the '.' of
 * "www." (3 bytes in), and no trigger lies before it within the match, so trying, at each
 * trigger in order, the starts it allows from the leftmost finds re.sub's matches. Without a
 * match nothing is written and *hits is 0: the input stands as the output. */
static ssize bare_urls(const char *s, ssize n, char *o, ssize *hits) {
    out_t out = {o, 0};
    ssize done = 0, i = 0;
    *hits = 0;
    const char *slash = memchr(s, '/', n), *dot = memchr(s, '.', n);
    while (slash || dot) {
        const char *p = (slash && (!dot || slash < dot)) ? slash : dot;
        ssize t = p - s, start = -1, k = t;
        if (*p == '/' && t + 1 < n && s[t + 1] == '/') {
            if (t - 6 >= done && ieq(s + t - 6, "https:", 6)) start = t - 6;
            else if (t - 5 >= done && ieq(s + t - 5, "http:", 5)) start = t - 5;
            else if (t - 4 >= done && ieq(s + t - 4, "ftp:", 4)) start = t - 4;
            else if (t + 2 < n && is_url_byte((unsigned char)s[t + 2])) start = t;
            k = t + 2;
        } else if (*p == '.' && t - 3 >= done && ieq(s + t - 3, "www", 3) &&
                   (t - 3 == 0 || !is_word((unsigned char)s[t - 4])) && t + 1 < n &&
                   is_url_byte((unsigned char)s[t + 1])) {
            start = t - 3;
            k = t + 1;
        }
        if (start >= 0) {
            while (k < n && is_url_byte((unsigned char)s[k])) k++;
            emit(&out, s + done, start - done);
            done = i = k;
            (*hits)++;
        } else {
            i = t + 1;
        }
        if (slash && slash - s < i) slash = i < n ? memchr(s + i, '/', n - i) : NULL;
        if (dot && dot - s < i) dot = i < n ? memchr(s + i, '.', n - i) : NULL;
    }
    if (!*hits) return n;
    emit(&out, s + done, n - done);
    return out.w;
}

/* ''+ -> "" */
static ssize m_emphasis(const char *s, ssize n, ssize i, repl_t *r) {
    ssize k = i;
    while (k < n && s[k] == '\'') k++;
    return k - i >= 2 ? k : -1;
}

/* \n[ \t]*=+[ \t]*(.*?)[ \t]*=+[ \t]*$  (re.M) -> "\n" + group 1. The opening run is greedy
 * and the group lazy, so the group ends where the line's closing "[ \t]*=+[ \t]*" begins, or
 * right after the opening blanks if that is later. */
static ssize m_heading(const char *s, ssize n, ssize i, repl_t *r) {
    ssize eol = i + 1;
    const char *nl = memchr(s + eol, '\n', n - eol);
    eol = nl ? nl - s : n;
    ssize a = i + 1;
    while (a < eol && (s[a] == ' ' || s[a] == '\t')) a++;
    ssize b = a;
    while (b < eol && s[b] == '=') b++;
    if (b == a) return -1;
    ssize end = eol;  /* the line without trailing blanks must end in '=' */
    while (end > a && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
    if (s[end - 1] != '=') return -1;
    ssize q = end;  /* the closing run of '=' */
    while (q > a && s[q - 1] == '=') q--;
    ssize t = q;  /* blanks before the closing run */
    while (t > a && (s[t - 1] == ' ' || s[t - 1] == '\t')) t--;
    for (ssize j = b - a; j >= 1; j--) {  /* the opening run is greedy: longest first */
        ssize g = a + j;
        while (g < eol && (s[g] == ' ' || s[g] == '\t')) g++;
        ssize e = g > t ? g : t;  /* the lazy group's end */
        if (e <= end - 1) {
            r->lit = "\n";
            r->lo = g;
            r->hi = e;
            return eol;
        }
    }
    return -1;
}

/* \n[ \t]*[*#:;]+ -> "\n" */
static ssize m_markers(const char *s, ssize n, ssize i, repl_t *r) {
    ssize k = i + 1;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
    ssize j = k;
    while (k < n && (s[k] == '*' || s[k] == '#' || s[k] == ':' || s[k] == ';')) k++;
    if (k == j) return -1;
    r->lit = "\n";
    return k;
}

/* \n-{4,} -> "\n" */
static ssize m_rule(const char *s, ssize n, ssize i, repl_t *r) {
    ssize k = i + 1;
    while (k < n && s[k] == '-') k++;
    if (k - i - 1 < 4) return -1;
    r->lit = "\n";
    return k;
}

/* __[A-Z]+__ -> "" */
static ssize m_magic(const char *s, ssize n, ssize i, repl_t *r) {
    if (i + 1 >= n || s[i + 1] != '_') return -1;
    ssize k = i + 2;
    while (k < n && s[k] >= 'A' && s[k] <= 'Z') k++;
    return (k > i + 2 && k + 1 < n && s[k] == '_' && s[k + 1] == '_') ? k + 2 : -1;
}

static PyObject *clean(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    ssize n = view.len;
    char *a = PyMem_Malloc(n + 2), *b = PyMem_Malloc(n + 2);
    if (!a || !b) {
        PyMem_Free(a), PyMem_Free(b), PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    char *cur = a, *nxt = b, *tmp;
    ssize hits;
    Py_BEGIN_ALLOW_THREADS
#define SWAP() (tmp = cur, cur = nxt, nxt = tmp)
    n = sub(view.buf, n, cur, '<', m_comment, NULL);
    n = sub(cur, n, nxt, '<', m_dropped, NULL), SWAP();
    n = sub(cur, n, nxt, '<', m_tag, NULL), SWAP();
    for (;;) {  /* templates and tables nest: peel innermost ones until none is left */
        ssize h1, h2;
        n = sub(cur, n, nxt, '{', m_template, &h1), SWAP();
        n = sub(cur, n, nxt, '{', m_table, &h2), SWAP();
        if (!h1 && !h2) break;
    }
    do {  /* links inside file captions: replace innermost links until none is left */
        n = sub(cur, n, nxt, '[', m_link, &hits), SWAP();
    } while (hits);
    n = sub(cur, n, nxt, '[', m_external, NULL), SWAP();
    n = bare_urls(cur, n, nxt, &hits);
    if (hits) SWAP();
    n = sub(cur, n, nxt + 1, '\'', m_emphasis, NULL);  /* written after a leading newline */
    nxt[0] = '\n', n += 1, SWAP();
    n = sub(cur, n, nxt, '\n', m_heading, NULL), SWAP();
    n = sub(cur, n, nxt, '\n', m_markers, NULL), SWAP();
    n = sub(cur, n, nxt, '_', m_magic, NULL), SWAP();
    n = sub(cur, n, nxt, '\n', m_rule, NULL), SWAP();
#undef SWAP
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *res = PyBytes_FromStringAndSize(cur + 1, n - 1);
    PyMem_Free(a), PyMem_Free(b);
    return res;
}

/* ---- xml_text: the character data of a dump's <text> element, unescaped ---- */

/* Length of the well-formed UTF-8 sequence of an XML Char at s[i] (s[0:n]; lead byte >= 0x80), or 0:
 * no overlong forms, surrogates, U+FFFE/U+FFFF or code points past U+10FFFF. */
static inline int xml_utf8_len(const unsigned char *s, ssize i, ssize n) {
    unsigned char c = s[i];
#define CONT(k) (i + (k) < n && (s[i + (k)] & 0xC0) == 0x80)
    if (c >= 0xC2 && c <= 0xDF) return CONT(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!CONT(1) || !CONT(2)) return 0;
        unsigned char d = s[i + 1];
        if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F)) return 0;
        if (c == 0xEF && d == 0xBF && s[i + 2] >= 0xBE) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!CONT(1) || !CONT(2) || !CONT(3)) return 0;
        unsigned char d = s[i + 1];
        if ((c == 0xF0 && d < 0x90) || (c == 0xF4 && d > 0x8F)) return 0;
        return 4;
    }
    return 0;
#undef CONT
}

/* xml_text(raw) -> bytes | None: the UTF-8 character data that an XML parser reports for raw, the
 * bytes between <text ...> and </text> of a dump page, with &lt; &gt; &amp; &quot; &apos; resolved;
 * None for anything a parser might reject or transform (numeric references, other entities, '<',
 * "]]>", CR, control characters, malformed UTF-8, non-characters): the caller parses those pages
 * with the XML parser, so the result is always the parser's. */
/* Bytes xml_text must look at: not ASCII, '&', '<', '>', CR, DEL and the C0 controls but tab and LF. */
static unsigned char xml_special[256];

static void init_xml_special(void) {
    for (int c = 0; c < 256; c++)
        xml_special[c] = c >= 0x7F || c == '&' || c == '<' || c == '>' || (c < 0x20 && c != '\t' && c != '\n');
}

static PyObject *xml_text(PyObject *self, PyObject *arg) {
    static const struct { const char *name; ssize len; char c; } ENT[] = {
        {"&lt;", 4, '<'}, {"&gt;", 4, '>'}, {"&amp;", 5, '&'}, {"&quot;", 6, '"'}, {"&apos;", 6, '\''}};
    Py_buffer v;
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *s = v.buf;
    ssize n = v.len, k = 0;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);  /* never longer than raw */
    if (!out) { PyBuffer_Release(&v); return NULL; }
    char *o = PyBytes_AS_STRING(out);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (ssize i = 0; i < n && ok;) {
        ssize j = i;
        while (j < n && !xml_special[s[j]]) j++;  /* a run of plain bytes, copied as one */
        memcpy(o + k, s + i, j - i), k += j - i, i = j;
        if (i == n) break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            int w = xml_utf8_len(s, i, n);
            if (!w) { ok = 0; break; }
            memcpy(o + k, s + i, w), k += w, i += w;
        } else if (c == '&') {
            int hit = 0;
            for (int e = 0; e < 5 && !hit; e++)
                if (i + ENT[e].len <= n && !memcmp(s + i, ENT[e].name, ENT[e].len))
                    o[k++] = ENT[e].c, i += ENT[e].len, hit = 1;
            ok = hit;
        } else if (c == '>' && !(i >= 2 && s[i - 1] == ']' && s[i - 2] == ']')) {
            o[k++] = (char)c, i++;
        } else {
            ok = 0;  /* '<', "]]>", CR, a control character; DEL (a valid XML Char) keeps the list short */
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&v);
    if (!ok) { Py_DECREF(out); Py_RETURN_NONE; }
    if (_PyBytes_Resize(&out, k) < 0) return NULL;
    return out;
}

/* ---- tokens: wit.text.normalize.token_stream's tokenisation, one pass over a batch ---- */

/* Length of the white-space character (Python's str.isspace) at s[i] (UTF-8, s[0:n]), or 0. */
static inline int ws_len(const unsigned char *s, ssize i, ssize n) {
    unsigned char c = s[i];
    if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 28 && c <= 32);
    if (c == 0xC2) return (i + 1 < n && (s[i + 1] == 0x85 || s[i + 1] == 0xA0)) ? 2 : 0;
    if (i + 2 >= n) return 0;
    unsigned char d = s[i + 1], e = s[i + 2];
    if (c == 0xE1) return (d == 0x9A && e == 0x80) ? 3 : 0;
    if (c == 0xE2) {
        if (d == 0x80) return (e <= 0x8A || e == 0xA8 || e == 0xA9 || e == 0xAF) && e >= 0x80 ? 3 : 0;
        return (d == 0x81 && e == 0x9F) ? 3 : 0;
    }
    if (c == 0xE3) return (d == 0x80 && e == 0x80) ? 3 : 0;
    return 0;
}

/* Byte classes: 0 part of a word, 1 ASCII white space, 2 padded punctuation (normalize.PADDED_PUNCTUATION),
 * 3 the lead byte of a multi-byte white-space character, if the bytes after it complete one (ws_len). */
static unsigned char byte_class[256];

static void init_byte_class(void) {
    for (int c = 0; c < 256; c++)
        byte_class[c] = ((c >= 9 && c <= 13) || (c >= 28 && c <= 32)) ? 1 : 0;
    for (const char *p = ",.;:?!`"; *p; p++) byte_class[(unsigned char)*p] = 2;
    byte_class[0xC2] = byte_class[0xE1] = byte_class[0xE2] = byte_class[0xE3] = 3;
}

typedef struct { char *p; ssize len, cap; } growbuf;

static inline int grow(growbuf *g, ssize more) {
    if (g->len + more <= g->cap) return 0;
    ssize cap = g->cap ? g->cap : 4096;
    while (cap < g->len + more) cap *= 2;
    char *p = PyMem_RawRealloc(g->p, cap);
    if (!p) return -1;
    g->p = p, g->cap = cap;
    return 0;
}

/* The hash of one word that wit.queries.vocab.string_hashes computes with numpy: the sum of
 * byte_i * B**i modulo 2**64, mixed with the length (must stay equal: spill buckets use it). */
static inline uint64_t word_hash(const unsigned char *p, ssize len) {
    uint64_t h = 0, pw = 1;
    for (ssize i = 0; i < len; i++) h += (uint64_t)p[i] * pw, pw *= 0x100000001B3ULL;
    h ^= (uint64_t)len * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

/* A batch's distinct tokens, in order of first sight: open addressing on word_hash, the slot
 * holding the token's id + 1 (0: empty); a hit is confirmed by comparing the bytes. */
typedef struct { int32_t *slot; uint64_t *hash; ssize cap, n, hcap; } dict_t;

static int dict_grow(dict_t *d) {
    ssize cap = d->cap ? d->cap * 2 : 1 << 12;
    int32_t *slot = PyMem_RawCalloc(cap, sizeof *slot);
    if (!slot) return -1;
    for (ssize k = 0; k < d->n; k++) {
        ssize b = (ssize)(d->hash[k] & (uint64_t)(cap - 1));
        while (slot[b]) b = (b + 1) & (cap - 1);
        slot[b] = (int32_t)(k + 1);
    }
    PyMem_RawFree(d->slot);
    d->slot = slot, d->cap = cap;
    return 0;
}

/* The id of token s[0:len] (hash h), adding it to chars/offs/hashes when new; -1: out of memory. */
static inline int64_t dict_id(dict_t *d, const unsigned char *s, ssize len, uint64_t h,
                              growbuf *chars, growbuf *offs) {
    if (2 * (d->n + 1) > d->cap && dict_grow(d)) return -1;
    ssize b = (ssize)(h & (uint64_t)(d->cap - 1));
    const int64_t *o = (const int64_t *)offs->p;
    for (int32_t v; (v = d->slot[b]); b = (b + 1) & (d->cap - 1)) {
        ssize k = v - 1;
        if (d->hash[k] == h && o[k + 1] - o[k] == len && !memcmp(chars->p + o[k], s, len)) return k;
    }
    if (d->n == d->hcap) {
        ssize hcap = d->hcap ? d->hcap * 2 : 1 << 11;
        uint64_t *hs = PyMem_RawRealloc(d->hash, hcap * sizeof *hs);
        if (!hs) return -1;
        d->hash = hs, d->hcap = hcap;
    }
    if (grow(chars, len) || grow(offs, sizeof(int64_t))) return -1;
    memcpy(chars->p + chars->len, s, len), chars->len += len;
    int64_t end = chars->len;
    memcpy(offs->p + offs->len, &end, sizeof end), offs->len += sizeof end;
    d->hash[d->n] = h, d->slot[b] = (int32_t)(d->n + 1);
    return d->n++;
}

/* tokens(data, offsets[, distinct]) -> (chars, token_offsets, joined[, codes, hashes]): data the
 * UTF-8 bytes of a batch of texts, offsets its n+1 int64 text boundaries (offsets[0] == 0).
 * Tokens are what normalize.token_stream defines: a padded punctuation byte alone, or a maximal
 * run of bytes that are neither white space nor padded punctuation, within one text. chars: the
 * tokens' bytes back to back; token_offsets: int64, one more than the tokens; joined: one byte
 * per neighbouring pair, 1 where both are in one text and exactly one of (left is punctuation,
 * white space between, right is punctuation) holds. With distinct true, chars and token_offsets
 * hold each distinct token once, in order of first sight (what pyarrow.compute.dictionary_encode
 * gives), codes (int32, one per token) index them, and hashes (uint64) are their word_hash. */
static PyObject *tokens(PyObject *self, PyObject *args) {
    Py_buffer data, offs;
    int distinct = 0;
    if (!PyArg_ParseTuple(args, "y*y*|p", &data, &offs, &distinct)) return NULL;
    const unsigned char *s = data.buf;
    ssize n_texts = offs.len / (ssize)sizeof(int64_t) - 1;
    PyObject *res = NULL;
    growbuf chars = {0}, toks = {0}, joined = {0}, codes = {0};
    dict_t dict = {0};
    int64_t *off = NULL;
    int failed = 0;
    if (n_texts < 0 || offs.len % (ssize)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets: a whole number of int64 values, at least one");
        goto done;
    }
    /* A private copy, checked here: the caller's buffer may change once the GIL is released. */
    if (!(off = PyMem_Malloc(offs.len))) { PyErr_NoMemory(); goto done; }
    memcpy(off, offs.buf, offs.len);
    for (ssize t = 0; t < n_texts; t++)
        if (off[t] < 0 || off[t] > off[t + 1] || off[t + 1] > data.len) {
            PyErr_SetString(PyExc_ValueError, "offsets: not ascending within the data");
            goto done;
        }
    if (distinct && off[n_texts] >= INT32_MAX) {  /* codes are int32: at most one token per byte */
        PyErr_SetString(PyExc_ValueError, "distinct tokens: a batch of at most 2**31 - 1 bytes");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (grow(&chars, distinct ? 1 : data.len + 1) || grow(&toks, sizeof(int64_t))) failed = 1;
    else {
        int64_t zero = 0;
        memcpy(toks.p, &zero, sizeof zero), toks.len = sizeof zero;
    }
    ssize n_tok = 0;
    for (ssize t = 0; t < n_texts && !failed; t++) {
        ssize i = (ssize)off[t], hi = (ssize)off[t + 1];
        int first = 1, prev_punct = 0, gap = 0;
        while (i < hi) {
            unsigned char k = byte_class[s[i]];
            int w = k == 1 ? 1 : k == 3 ? ws_len(s, i, hi) : 0;
            if (w) { i += w, gap = 1; continue; }
            ssize j = i + 1;
            int punct = k == 2;
            if (!punct)
                for (; j < hi; j++) {
                    unsigned char kj = byte_class[s[j]];
                    if (kj == 1 || kj == 2 || (kj == 3 && ws_len(s, j, hi))) break;
                }
            if (grow(&joined, 1)) { failed = 1; break; }
            if (distinct) {
                int64_t id = dict_id(&dict, s + i, j - i, word_hash(s + i, j - i), &chars, &toks);
                if (id < 0 || grow(&codes, sizeof(int32_t))) { failed = 1; break; }
                int32_t c = (int32_t)id;
                memcpy(codes.p + codes.len, &c, sizeof c), codes.len += sizeof c;
            } else {
                if (grow(&toks, sizeof(int64_t))) { failed = 1; break; }
                memcpy(chars.p + chars.len, s + i, j - i), chars.len += j - i;
                int64_t end = chars.len;
                memcpy(toks.p + toks.len, &end, sizeof end), toks.len += sizeof end;
            }
            if (n_tok > 0) joined.p[joined.len++] = !first && (prev_punct + gap + punct == 1);
            n_tok++, first = 0, prev_punct = punct, gap = 0, i = j;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) { PyErr_NoMemory(); goto done; }
    if (distinct)
        res = Py_BuildValue("y#y#y#y#y#", chars.p ? chars.p : "", chars.len, toks.p, toks.len,
                            joined.p ? joined.p : "", joined.len, codes.p ? codes.p : "", codes.len,
                            dict.hash ? (char *)dict.hash : "", dict.n * (ssize)sizeof(uint64_t));
    else
        res = Py_BuildValue("y#y#y#", chars.p ? chars.p : "", chars.len, toks.p, toks.len,
                            joined.p ? joined.p : "", joined.len);
done:
    PyMem_RawFree(chars.p), PyMem_RawFree(toks.p), PyMem_RawFree(joined.p), PyMem_RawFree(codes.p);
    PyMem_RawFree(dict.slot), PyMem_RawFree(dict.hash), PyMem_Free(off);
    PyBuffer_Release(&data), PyBuffer_Release(&offs);
    return res;
}

static PyMethodDef methods[] = {
    {"clean", clean, METH_O,
     "clean(utf8) -> bytes: wikipedia.clean_wikitext_reference's passes on UTF-8 bytes, "
     "without the final html.unescape."},
    {"xml_text", xml_text, METH_O,
     "xml_text(raw) -> bytes | None: a dump <text> element's character data, unescaped, or None "
     "where only an XML parser can say."},
    {"tokens", tokens, METH_VARARGS,
     "tokens(utf8, offsets[, distinct]) -> (chars, token_offsets, joined[, codes, hashes]): "
     "normalize.token_stream's tokens of a batch, or its distinct tokens and a code per token."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_wikiclean",
                                    "Compiled wikitext cleaner (see wikipedia.py).", -1, methods};

PyMODINIT_FUNC PyInit__wikiclean(void) {
    init_byte_class();
    init_xml_special();
    return PyModule_Create(&module);
}
