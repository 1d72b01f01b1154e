package collector

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// variant is one way a scrape can be served: a negotiated Content-Type
// (format and escaping) and a content encoding ("" or "gzip").
type variant struct {
	format   expfmt.Format
	encoding string
}

// maxVariants bounds the variants kept encoded across refreshes and the
// Accept/Accept-Encoding pairs whose negotiation is remembered: clients send
// the same headers at every scrape, so a handful is all there ever is.
const maxVariants = 16

// gathered is what one Refresh gathered and its encodings.
type gathered struct {
	families []*dto.MetricFamily
	mu       sync.RWMutex
	bodies   map[variant]encoded
}

// encoded is one variant's body and its Content-Length header value,
// shared by every scrape that serves it.
type encoded struct {
	body   []byte
	length []string
}

// body returns v's encoding of g, encoding it on the first call; s learns
// that v is wanted, so that every later Refresh encodes it ahead.
func (g *gathered) body(s *Snapshot, v variant) encoded {
	g.mu.RLock()
	b, ok := g.bodies[v]
	g.mu.RUnlock()
	if ok {
		return b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.bodies[v]; ok {
		return b
	}
	b = encode(g.families, v)
	g.bodies[v] = b
	s.mu.Lock()
	if len(s.wanted) < maxVariants && !slices.Contains(s.wanted, v) {
		s.wanted = append(s.wanted, v)
	}
	s.mu.Unlock()
	return b
}

// encode writes families in v's format as promhttp does, then compresses
// it when v asks for it.
func encode(families []*dto.MetricFamily, v variant) encoded {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, v.format)
	for _, mf := range families {
		// Encoding into memory fails only for families the registry
		// would not have gathered.
		_ = enc.Encode(mf)
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
	body := buf.Bytes()
	if v.encoding == "gzip" {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(body)
		w.Close()
		body = gz.Bytes()
	}
	// Clipped, so that an append by a middleware copies.
	return encoded{body: slices.Clip(body), length: []string{strconv.Itoa(len(body))}}
}

// negotiated is what promhttp answers to one pair of Accept and
// Accept-Encoding headers: its response headers and the variant they name.
type negotiated struct {
	header http.Header
	variant
}

// negotiationKey is a request's Accept header (promhttp reads its first
// value) and its Accept-Encoding values (all of them), joined.
type negotiationKey struct{ accept, acceptEncoding string }

// Handler returns what promhttp.HandlerFor(s, opts) returns, except that it
// writes bytes encoded once per Refresh for each format and encoding that
// clients negotiate, instead of encoding at every scrape. The first scrape
// of a new format encodes it; every Refresh after encodes it ahead.
//
// Negotiation is promhttp's own: for each new pair of Accept and
// Accept-Encoding headers the handler asks promhttp, over no metrics, which
// headers it answers, and serves those. So are the in-flight limit and its
// 503. Timeout has nothing to bound (no scrape gathers, and promhttp's
// timeout never covered sending the body), so it is not applied: it would
// only copy every body once more. Options beyond ErrorLog, Timeout,
// MaxRequestsInFlight, EnableOpenMetrics, AcceptedFormats,
// DisableCompression and OfferedCompressions, a name[] filter, and a
// compression other than gzip are served by promhttp itself, from the same
// snapshot.
func (s *Snapshot) Handler(opts promhttp.HandlerOpts) http.Handler {
	fallback := promhttp.HandlerFor(s, opts)
	rest := opts
	rest.ErrorLog, rest.Timeout, rest.MaxRequestsInFlight = nil, 0, 0
	rest.EnableOpenMetrics, rest.AcceptedFormats = false, nil
	rest.DisableCompression, rest.OfferedCompressions = false, nil
	if !reflect.ValueOf(rest).IsZero() {
		return fallback
	}
	probeOpts := opts
	probeOpts.Timeout, probeOpts.MaxRequestsInFlight = 0, 0
	h := &handler{
		s:        s,
		fallback: fallback,
		probe:    promhttp.HandlerFor(prometheus.Gatherers{}, probeOpts),
		known:    map[negotiationKey]negotiated{},
	}
	if opts.MaxRequestsInFlight > 0 {
		h.inFlight = make(chan struct{}, opts.MaxRequestsInFlight)
		h.limitMsg = "Limit of concurrent requests reached (" + strconv.Itoa(opts.MaxRequestsInFlight) + "), try again later."
	}
	return h
}

type handler struct {
	s        *Snapshot
	fallback http.Handler // promhttp over s
	probe    http.Handler // promhttp over no metrics, to negotiate
	inFlight chan struct{}
	limitMsg string

	mu    sync.RWMutex
	known map[negotiationKey]negotiated
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.inFlight != nil {
		select {
		case h.inFlight <- struct{}{}:
			defer func() { <-h.inFlight }()
		default:
			http.Error(w, h.limitMsg, http.StatusServiceUnavailable)
			return
		}
	}
	g := h.s.current.Load()
	n, ok := h.negotiate(r)
	if !ok || g == nil || (r.URL != nil && r.URL.RawQuery != "" && r.URL.Query().Has("name[]")) {
		h.fallback.ServeHTTP(w, r)
		return
	}
	b := g.body(h.s, n.variant)
	header := w.Header()
	for k, v := range n.header {
		header[k] = v
	}
	header["Content-Length"] = b.length
	w.Write(b.body)
}

// negotiate returns what promhttp answers to r's Accept and Accept-Encoding
// headers, and false when it picks a compression other than gzip.
func (h *handler) negotiate(r *http.Request) (negotiated, bool) {
	key := negotiationKey{accept: r.Header.Get("Accept")}
	if enc := r.Header.Values("Accept-Encoding"); len(enc) == 1 {
		key.acceptEncoding = enc[0]
	} else {
		key.acceptEncoding = strings.Join(enc, "\n")
	}
	h.mu.RLock()
	n, ok := h.known[key]
	h.mu.RUnlock()
	if !ok {
		n = h.ask(r)
		h.mu.Lock()
		if len(h.known) < maxVariants {
			h.known[key] = n
		}
		h.mu.Unlock()
	}
	return n, n.encoding == "" || n.encoding == "gzip"
}

// ask has promhttp answer r's headers over no metrics, and keeps the
// headers it sets.
func (h *handler) ask(r *http.Request) negotiated {
	req := &http.Request{Method: http.MethodGet, Header: http.Header{}}
	for _, k := range []string{"Accept", "Accept-Encoding"} {
		if vs, ok := r.Header[k]; ok {
			req.Header[k] = vs
		}
	}
	rec := &headerRecorder{header: http.Header{}}
	h.probe.ServeHTTP(rec, req)
	n := negotiated{header: rec.header, variant: variant{
		format:   expfmt.Format(rec.header.Get("Content-Type")),
		encoding: rec.header.Get("Content-Encoding"),
	}}
	for k, v := range n.header {
		// Served to every response: an Add there must copy.
		n.header[k] = slices.Clip(v)
	}
	return n
}

// headerRecorder is a ResponseWriter that keeps headers and drops the body.
type headerRecorder struct{ header http.Header }

func (r *headerRecorder) Header() http.Header         { return r.header }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}
