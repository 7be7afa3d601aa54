// Package promscrape reads a Prometheus text exposition over HTTP, for the
// metrics tests and the fleet simulation: they read the figures the way a
// Prometheus server would, never from Go variables.
package promscrape

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the scraped metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (with token as bearer when set) and parses the text
// format.
func Scrape(ctx context.Context, client *http.Client, url, token string) (Families, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse: %w", url, err)
	}
	return Families(fams), nil
}

// matches reports whether m carries every label of want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// Value is the sum of the counter, gauge or untyped samples of name whose
// labels include want (0 when none).
func (f Families) Value(name string, want map[string]string) float64 {
	var sum float64
	for _, m := range f[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

// Histogram is a histogram's samples merged over the series matching the
// labels.
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64 // upper bound → cumulative count
}

// Histogram merges the series of histogram name whose labels include want.
func (f Families) Histogram(name string, want map[string]string) Histogram {
	h := Histogram{Buckets: map[float64]uint64{}}
	for _, m := range f[name].GetMetric() {
		if m.Histogram == nil || !matches(m, want) {
			continue
		}
		h.Count += m.GetHistogram().GetSampleCount()
		h.Sum += m.GetHistogram().GetSampleSum()
		for _, b := range m.GetHistogram().GetBucket() {
			h.Buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	return h
}

// Quantile estimates the q-quantile (0 < q < 1) the way PromQL's
// histogram_quantile does: linear interpolation inside the bucket that
// holds it. NaN without samples; the highest finite bound when the
// quantile falls in the +Inf bucket.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for b := range h.Buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := q * float64(h.Count)
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := float64(h.Buckets[b])
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound
			}
			if c == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}
