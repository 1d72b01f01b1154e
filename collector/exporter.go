// Package collector is the Prometheus side of cro-exporter: it turns the
// controller's latest State into metrics, gathered and encoded once a tick,
// and serves those bytes to scrapes.
//
// Like all of cro-exporter, it builds and runs on Linux only.
package collector

import (
	"sync/atomic"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "cro"

// Exporter is the Prometheus collector of cro-exporter. It serves the last
// State published to it, so a scrape costs no host reads and never waits for
// the controller.
type Exporter struct {
	state atomic.Pointer[controller.State]

	usage, average, target, setpoint, history   *prometheus.Desc
	shortfall                                   *prometheus.Desc
	holders, holderUsage, holderBytes, releases *prometheus.Desc
	ceiling, spec, cpus, lastSample             *prometheus.Desc
	memoryTotal, memoryAvailable, reserve       *prometheus.Desc
	diskSize, diskUsed, diskAvailable           *prometheus.Desc
	diskPresent, diskLosses                     *prometheus.Desc
	pressureStalled                             *prometheus.Desc
	window, interval                            *prometheus.Desc
	failures, refusals, holdOff, saveFailures   *prometheus.Desc
	clockSteps                                  *prometheus.Desc
	objective, audit, auditPeriod, auditSub     *prometheus.Desc
	auditPassing, auditNeeded                   *prometheus.Desc
}

// NewExporter returns an Exporter with nothing published yet; it exposes no
// cro_ metrics until the first Publish.
func NewExporter() *Exporter {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &Exporter{
		usage:           desc("usage_ratio", "Utilization of the resource at the last sample, holders included, 0..1; for the disk, used / (used + available) as df's Use% counts it.", "resource"),
		average:         desc("usage_average_ratio", "Time-decayed average of the resource's utilization over the window, holders included, 0..1.", "resource"),
		target:          desc("target_ratio", "Ratio the resource's audited statistic must reach.", "resource"),
		shortfall:       desc("target_shortfall_ratio", "How far under its target the most the holders may bring the resource's usage to stays, 0..1, while a limit keeps the target out of reach: the ceiling, a reserve, or the daemon's cgroup (memory limit, CPU quota); 0 otherwise.", "resource"),
		objective:       desc("objective_info", "The statistic the auditor computes of the resource's utilization over its window: mean, a percentile of audit period values such as p95, or their max (a period's value is its mean, or the max of its sub-periods' means).", "resource", "statistic"),
		audit:           desc("audit_ratio", "The resource's statistic as the auditor computes it now over the trailing window, 0..1: the average for the mean; for a percentile, that percentile of the window's period means, periods nobody saw counted as 0.", "resource"),
		auditPeriod:     desc("audit_period_seconds", "The audit period whose means a percentile objective is taken of, aligned to the clock (--audit.period).", "resource"),
		auditSub:        desc("audit_subperiod_seconds", "The sub-period whose means' max is an audit period's value, aligned to the clock (--audit.subperiod); absent where a period's value is its mean.", "resource"),
		auditPassing:    desc("audit_passing_ratio", "Share of the window's audit periods whose value (mean, or max of sub-period means) is at or above the target, for a percentile objective.", "resource"),
		auditNeeded:     desc("audit_periods_needed", "Periods at or above the target the window still needs for its percentile to reach the target; 0 when it does.", "resource"),
		setpoint:        desc("setpoint_ratio", "Total utilization of the resource the controller aims at now, 0..1.", "resource"),
		history:         desc("average_history_seconds", "How much history the resource's average holds, at most the window.", "resource"),
		holders:         desc("holders", "Number of holder processes (memory, cpu) or fill files (disk) of the resource.", "resource"),
		holderUsage:     desc("holder_usage_ratio", "Share of the resource taken by holders, 0..1.", "resource"),
		holderBytes:     desc("holder_bytes", "Bytes held by memory ballast or disk fill files.", "resource"),
		releases:        desc("holder_releases_total", "Times holder load was given back before the average said so, by reason: pressure, reserve, real_usage.", "resource", "reason"),
		failures:        desc("holder_failures_total", "Holders that failed: ended by themselves (killed from outside, OOM), failed to start, fill or answer; for disk, fill that could not be resized.", "resource"),
		refusals:        desc("holder_starts_refused_total", "Holder starts refused because the daemon's cgroup had too few pids left for the holder's threads and the daemon's own.", "resource"),
		holdOff:         desc("holder_hold_off_seconds", "How long the holders may not grow yet after a pressure release; it doubles when releases repeat.", "resource"),
		saveFailures:    desc("state_save_failures_total", "Failed saves of the averages to the state dir."),
		clockSteps:      desc("clock_steps_total", "Steps of the wall clock, either way, seen against the monotonic clock between two samples; the averages and audit periods go on from the new time."),
		ceiling:         desc("ceiling_ratio", "Ratio no target or setpoint is ever above."),
		spec:            desc("spec_info", "The host's spec class, from its memory size.", "spec"),
		cpus:            desc("cpus", "Number of CPUs in /proc/stat."),
		lastSample:      desc("last_sample_timestamp_seconds", "Unix time of the last sample of the host."),
		interval:        desc("sample_interval_seconds", "Time between two samples of the host (--interval)."),
		window:          desc("average_window_seconds", "The trailing window the resource is audited over (--window); its average's time constant is half of it.", "resource"),
		memoryTotal:     desc("memory_total_bytes", "MemTotal from /proc/meminfo."),
		memoryAvailable: desc("memory_available_bytes", "MemAvailable from /proc/meminfo."),
		diskSize:        desc("disk_size_bytes", "Size of the filesystem holding --disk.path, the blocks reserved for root included."),
		diskUsed:        desc("disk_used_bytes", "Bytes used on the filesystem holding --disk.path, as df counts them: size less free blocks."),
		diskAvailable:   desc("disk_available_bytes", "Bytes an unprivileged user may still write on the filesystem holding --disk.path."),
		diskPresent:     desc("disk_filesystem_present", "1 while --disk.path is on the filesystem it was on at start and statfs measures it; 0 while not (unmounted, deleted, another filesystem in its place, statfs failing): the disk is then neither averaged nor filled, its fill is released, and its usage and size are not exported."),
		diskLosses:      desc("disk_filesystem_losses_total", "Times since the start cro_disk_filesystem_present went to 0."),
		reserve:         desc("reserve_bytes", "MemAvailable (memory) or free disk space (disk) that holders always leave to real work.", "resource"),
		pressureStalled: desc("pressure_stalled_seconds_total", "Time in which some or all non-idle tasks were stalled on the resource, from /proc/pressure (io is filed under disk).", "resource", "kind"),
	}
}

// Publish makes s the state that scrapes expose. s must not change afterwards.
func (e *Exporter) Publish(s *controller.State) { e.state.Store(s) }

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		e.usage, e.average, e.target, e.shortfall, e.setpoint, e.history, e.holders, e.holderUsage, e.holderBytes, e.releases,
		e.ceiling, e.spec, e.cpus, e.lastSample, e.memoryTotal, e.memoryAvailable,
		e.diskSize, e.diskUsed, e.diskAvailable, e.diskPresent, e.diskLosses, e.pressureStalled, e.reserve, e.window, e.interval,
		e.failures, e.refusals, e.holdOff, e.saveFailures, e.clockSteps,
		e.objective, e.audit, e.auditPeriod, e.auditSub, e.auditPassing, e.auditNeeded,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	s := e.state.Load()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, r := range host.Resources {
		rs := s.Resources[r]
		if r != host.Disk || s.Sample.DiskErr == nil {
			gauge(e.usage, s.Sample.Usage(r), string(r))
		}
		gauge(e.average, rs.Average, string(r))
		gauge(e.target, rs.Target, string(r))
		gauge(e.shortfall, rs.Shortfall, string(r))
		gauge(e.objective, 1, string(r), rs.Statistic)
		gauge(e.audit, rs.Audit, string(r))
		if rs.Period > 0 { // a percentile of period means
			gauge(e.auditPeriod, rs.Period.Seconds(), string(r))
			gauge(e.auditPassing, rs.Passing, string(r))
			gauge(e.auditNeeded, float64(rs.Needed), string(r))
		}
		if rs.Subperiod > 0 {
			gauge(e.auditSub, rs.Subperiod.Seconds(), string(r))
		}
		gauge(e.setpoint, rs.Setpoint, string(r))
		gauge(e.history, rs.History.Seconds(), string(r))
		gauge(e.window, rs.Window.Seconds(), string(r))
		gauge(e.holders, float64(rs.Holders), string(r))
		gauge(e.holderUsage, rs.HolderShare, string(r))
		ch <- prometheus.MustNewConstMetric(e.failures, prometheus.CounterValue, float64(rs.Failures), string(r))
		if r != host.Disk {
			ch <- prometheus.MustNewConstMetric(e.refusals, prometheus.CounterValue, float64(rs.Refusals), string(r))
		}
		if r != host.CPU {
			gauge(e.holderBytes, float64(rs.HolderBytes), string(r))
		}
		if r == host.Memory {
			gauge(e.holdOff, rs.HoldOff.Seconds(), string(r))
		}
		for _, reason := range controller.Reasons {
			if !reason.Releasable(r) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(e.releases, prometheus.CounterValue, float64(rs.Releases[reason]), string(r), reason.String())
		}
		if p, ok := s.Sample.Pressure[r]; ok {
			ch <- prometheus.MustNewConstMetric(e.pressureStalled, prometheus.CounterValue, p.Some.Seconds(), string(r), "some")
			ch <- prometheus.MustNewConstMetric(e.pressureStalled, prometheus.CounterValue, p.Full.Seconds(), string(r), "full")
		}
	}
	gauge(e.ceiling, s.Ceiling)
	ch <- prometheus.MustNewConstMetric(e.saveFailures, prometheus.CounterValue, float64(s.SaveFailures))
	ch <- prometheus.MustNewConstMetric(e.clockSteps, prometheus.CounterValue, float64(s.ClockSteps))
	gauge(e.spec, 1, s.Spec)
	gauge(e.cpus, float64(s.Sample.CPUs))
	gauge(e.lastSample, float64(s.Sample.Time.UnixNano())/1e9)
	gauge(e.interval, s.Interval.Seconds())
	gauge(e.memoryTotal, float64(s.Sample.MemoryTotal))
	gauge(e.memoryAvailable, float64(s.Sample.MemoryAvailable))
	present := 0.0
	if s.Sample.DiskErr == nil {
		present = 1
		gauge(e.diskSize, float64(s.Sample.DiskSize))
		gauge(e.diskUsed, float64(s.Sample.DiskUsed))
		gauge(e.diskAvailable, float64(s.Sample.DiskAvailable))
	}
	gauge(e.diskPresent, present)
	ch <- prometheus.MustNewConstMetric(e.diskLosses, prometheus.CounterValue, float64(s.DiskLosses))
	gauge(e.reserve, float64(s.MemoryReserve), string(host.Memory))
	gauge(e.reserve, float64(s.DiskReserve), string(host.Disk))
}
