package collector

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestSnapshotServesWhatWasGatheredAtTheLastRefresh(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "A gauge."})
	reg.MustRegister(g)
	s := NewSnapshot(reg)

	if families, err := s.Gather(); err != nil || len(families) != 0 {
		t.Fatalf("before the first Refresh: %v, %v; want nothing", families, err)
	}
	g.Set(1)
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	g.Set(2)
	want := "# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
	if err := testutil.GatherAndCompare(s, strings.NewReader(want)); err != nil {
		t.Errorf("between refreshes: %v", err)
	}
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(s, strings.NewReader(strings.Replace(want, "g 1", "g 2", 1))); err != nil {
		t.Errorf("after the next refresh: %v", err)
	}
}

// countingGatherer counts its gathers.
type countingGatherer struct {
	prometheus.Gatherer
	n atomic.Int64
}

func (g *countingGatherer) Gather() ([]*dto.MetricFamily, error) {
	g.n.Add(1)
	return g.Gatherer.Gather()
}

// scrapeRequests are the header pairs the handler must answer as promhttp
// does: none (curl, wrk), Prometheus 3's defaults with and without native
// histograms, explicit formats and escapings, and odd encodings.
var scrapeRequests = []struct{ accept, acceptEncoding string }{
	{"", ""},
	{"*/*", "gzip"},
	{"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4," +
		"text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", "gzip"},
	{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6," +
		"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", "gzip"},
	{"text/plain;version=0.0.4;escaping=values", "identity"},
	{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", "gzip;q=0.5, identity"},
	{"application/openmetrics-text;version=0.0.1", "zstd"},
	{"text/html", "gzip;q=0, identity;q=0"},
}

// scrapeRegistry has every kind of metric the exporter serves.
func scrapeRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g_ratio", Help: "A gauge."}, []string{"resource"})
	g.WithLabelValues("cpu").Set(0.25)
	g.WithLabelValues("memory").Set(1)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "A counter."})
	c.Add(3)
	reg.MustRegister(g, c)
	return reg
}

func serveOnce(h http.Handler, accept, acceptEncoding, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	serveTo(h, rec, accept, acceptEncoding, target)
	return rec
}

// serveTo serves one request with these headers, where given, to w.
func serveTo(h http.Handler, w http.ResponseWriter, accept, acceptEncoding, target string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	h.ServeHTTP(w, req)
}

func TestHandlerServesWhatPromhttpWouldEncode(t *testing.T) {
	for _, openMetrics := range []bool{false, true} {
		opts := promhttp.HandlerOpts{MaxRequestsInFlight: 10, Timeout: 10 * time.Second, EnableOpenMetrics: openMetrics}
		s := NewSnapshot(scrapeRegistry())
		if err := s.Refresh(); err != nil {
			t.Fatal(err)
		}
		ours, theirs := s.Handler(opts), promhttp.HandlerFor(s, opts)
		formats := map[string]bool{}
		for _, target := range []string{"/metrics", "/metrics?name[]=c_total&name[]=g_ratio"} {
			for _, r := range scrapeRequests {
				// Twice: once encoded by the scrape, once from the cache.
				for range 2 {
					got, want := serveOnce(ours, r.accept, r.acceptEncoding, target), serveOnce(theirs, r.accept, r.acceptEncoding, target)
					name := fmt.Sprintf("openmetrics %v, %s, Accept %q, Accept-Encoding %q", openMetrics, target, r.accept, r.acceptEncoding)
					if got.Code != want.Code {
						t.Errorf("%s: status %d, promhttp %d", name, got.Code, want.Code)
					}
					for _, h := range []string{"Content-Type", "Content-Encoding", "Vary"} {
						if g, w := got.Header().Values(h), want.Header().Values(h); !slices.Equal(g, w) {
							t.Errorf("%s: %s %q, promhttp %q", name, h, g, w)
						}
					}
					if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
						t.Errorf("%s: the body differs from promhttp's:\n%q\n%q", name, got.Body.String(), want.Body.String())
					}
					formats[want.Header().Get("Content-Type")+" "+want.Header().Get("Content-Encoding")] = true
				}
			}
		}
		if len(formats) < 5 {
			t.Errorf("openmetrics %v: only %d formats negotiated: %v", openMetrics, len(formats), formats)
		}
	}
}

// bodyRecorder records where the body it was written starts: a scrape
// served from the snapshot writes the bytes encoded at the Refresh, whose
// start is the same for every scrape, and a new encoding starts elsewhere.
type bodyRecorder struct {
	*httptest.ResponseRecorder
	body *byte
}

func (w *bodyRecorder) Write(b []byte) (int, error) {
	if w.body == nil {
		w.body = unsafe.SliceData(b)
	}
	return w.ResponseRecorder.Write(b)
}

// encodedBodies are where the bodies s encoded for its last Refresh start.
func encodedBodies(s *Snapshot) map[*byte]bool {
	g := s.current.Load()
	g.mu.RLock()
	defer g.mu.RUnlock()
	bodies := map[*byte]bool{}
	for _, b := range g.bodies {
		bodies[unsafe.SliceData(b.body)] = true
	}
	return bodies
}

func TestScrapesNeitherGatherNorEncode(t *testing.T) {
	reg := &countingGatherer{Gatherer: scrapeRegistry()}
	s := NewSnapshot(reg)
	h := s.Handler(promhttp.HandlerOpts{MaxRequestsInFlight: 10, EnableOpenMetrics: true})
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	// scrape serves every request once and returns where each body
	// started, checking that each is one the snapshot encoded.
	scrape := func(tick int) []*byte {
		t.Helper()
		var served []*byte
		for _, r := range scrapeRequests {
			w := &bodyRecorder{ResponseRecorder: httptest.NewRecorder()}
			serveTo(h, w, r.accept, r.acceptEncoding, "/metrics")
			if w.Code != http.StatusOK || w.Body.Len() == 0 {
				t.Fatalf("tick %d: status %d, %d bytes", tick, w.Code, w.Body.Len())
			}
			if !encodedBodies(s)[w.body] {
				t.Fatalf("tick %d: Accept %q, Accept-Encoding %q: a body the snapshot did not encode", tick, r.accept, r.acceptEncoding)
			}
			served = append(served, w.body)
		}
		return served
	}
	// The first scrape of each format encodes it, once.
	seen := map[*byte]bool{}
	for range 3 {
		for _, b := range scrape(-1) {
			seen[b] = true
		}
	}
	formats := len(encodedBodies(s))
	if formats < 5 || len(seen) != formats {
		t.Fatalf("%d bodies served of %d encoded for %d requests, want one per format", len(seen), formats, len(scrapeRequests))
	}
	// From then on each Refresh encodes them, and scrapes write bytes.
	for tick := range 3 {
		if err := s.Refresh(); err != nil {
			t.Fatal(err)
		}
		gathers, bodies := reg.n.Load(), encodedBodies(s)
		fresh := 0
		for b := range bodies {
			if !seen[b] {
				fresh++
				seen[b] = true
			}
		}
		if len(bodies) != formats || fresh != formats {
			t.Errorf("tick %d: the Refresh encoded %d bodies, %d of them new, want %d each Refresh", tick, len(bodies), fresh, formats)
		}
		for range 100 {
			scrape(tick)
		}
		if g, e := reg.n.Load()-gathers, len(encodedBodies(s))-len(bodies); g != 0 || e != 0 {
			t.Errorf("tick %d: scrapes gathered %d times and encoded %d times, want neither", tick, g, e)
		}
	}
}

func TestHandlerRefusesScrapesBeyondTheLimitAsPromhttpDoes(t *testing.T) {
	block := make(chan struct{})
	s := NewSnapshot(scrapeRegistry())
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	h := s.Handler(promhttp.HandlerOpts{MaxRequestsInFlight: 1})
	w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), block: block}
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		close(done)
	}()
	for w.writing.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	rec := serveOnce(h, "", "", "/metrics")
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "Limit of concurrent requests reached (1), try again later.\n" {
		t.Errorf("second scrape: %d %q", rec.Code, rec.Body.String())
	}
	close(block)
	<-done
}

// blockingWriter blocks writes until block closes.
type blockingWriter struct {
	*httptest.ResponseRecorder
	block   chan struct{}
	writing atomic.Int64
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	w.writing.Add(1)
	<-w.block
	return w.ResponseRecorder.Write(b)
}
