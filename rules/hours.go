package rules

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // business_hours("...", "Europe/Paris") works on hosts without zoneinfo
)

// Business hours: business_hours(spec) and business_hours(spec, timezone) report whether the
// event's time falls in the given hours. A spec is a list of "days hours" groups separated by
// ";", where days are Mon..Sun names, ranges (Mon-Fri) or lists (Mon,Wed), or "daily", and
// hours are ranges separated by ",":
//
//	business_hours("Mon-Fri 09:00-17:00", "Europe/Paris")
//	business_hours("Mon-Fri 09:00-12:30,13:30-18:00; Sat 10:00-12:00")
//	business_hours("daily 22:00-06:00")   // a range past midnight belongs to the day it starts
//
// Without a timezone the engine's location is used (Options.Location).

type hoursSpec struct {
	days [7][]span // by time.Weekday, minutes since midnight
}

type span struct{ from, to int }

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseHours(spec string) (*hoursSpec, error) {
	h := &hoursSpec{}
	groups := strings.Split(spec, ";")
	for _, g := range groups {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		fields := strings.Fields(g)
		if len(fields) != 2 {
			return nil, fmt.Errorf("business hours %q: each group is \"days hours\", such as \"Mon-Fri 09:00-17:00\"", g)
		}
		days, err := parseDays(fields[0])
		if err != nil {
			return nil, err
		}
		for _, r := range strings.Split(fields[1], ",") {
			a, b, ok := strings.Cut(r, "-")
			if !ok {
				return nil, fmt.Errorf("business hours: %q is not a range such as 09:00-17:00", r)
			}
			from, err := parseClock(a)
			if err != nil {
				return nil, err
			}
			to, err := parseClock(b)
			if err != nil {
				return nil, err
			}
			if from == to {
				return nil, fmt.Errorf("business hours: range %q is empty", r)
			}
			for _, d := range days {
				if to > from {
					h.days[d] = append(h.days[d], span{from, to})
				} else { // past midnight
					h.days[d] = append(h.days[d], span{from, 24 * 60})
					h.days[(d+1)%7] = append(h.days[(d+1)%7], span{0, to})
				}
			}
		}
	}
	return h, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	s = strings.ToLower(s)
	if s == "daily" || s == "everyday" {
		return []time.Weekday{0, 1, 2, 3, 4, 5, 6}, nil
	}
	var out []time.Weekday
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		da, ok := weekday(a)
		if !ok {
			return nil, fmt.Errorf("business hours: unknown day %q: use Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily", a)
		}
		if !isRange {
			out = append(out, da)
			continue
		}
		db, ok := weekday(b)
		if !ok {
			return nil, fmt.Errorf("business hours: unknown day %q: use Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily", b)
		}
		for d := da; ; d = (d + 1) % 7 {
			out = append(out, d)
			if d == db {
				break
			}
		}
	}
	return out, nil
}

func weekday(s string) (time.Weekday, bool) {
	if len(s) < 3 {
		return 0, false
	}
	d, ok := weekdays[s[:3]]
	return d, ok
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("business hours: %q is not a time such as 09:00", s)
	}
	return hh*60 + mm, nil
}

func (h *hoursSpec) open(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	for _, s := range h.days[t.Weekday()] {
		if m >= s.from && m < s.to {
			return true
		}
	}
	return false
}

var (
	hoursCache sync.Map // spec -> *hoursSpec
	zoneCache  sync.Map // name -> *time.Location
)

func cachedHours(spec string) (*hoursSpec, error) {
	if h, ok := hoursCache.Load(spec); ok {
		return h.(*hoursSpec), nil
	}
	h, err := parseHours(spec)
	if err != nil {
		return nil, err
	}
	hoursCache.Store(spec, h)
	return h, nil
}

func cachedZone(name string) (*time.Location, error) {
	if l, ok := zoneCache.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown timezone %q: use a name such as Europe/Paris or UTC", name)
	}
	zoneCache.Store(name, l)
	return l, nil
}

func businessHours(ctx context.Context, args ...any) (any, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("business_hours takes a spec and an optional timezone")
	}
	spec, _ := args[0].(string)
	h, err := cachedHours(spec)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if i, ok := InfoFrom(ctx); ok {
		now = i.Now
	}
	if len(args) == 2 {
		tz, _ := args[1].(string)
		loc, err := cachedZone(tz)
		if err != nil {
			return nil, err
		}
		now = now.In(loc)
	}
	return h.open(now), nil
}
