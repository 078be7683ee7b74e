package alarm_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// Rules without a scheduler: fire once, stay quiet, resolve.
func ExampleManager() {
	ctx := context.Background()
	print := alarm.FuncSink("print", func(_ context.Context, as []alarm.Alarm) error {
		for _, a := range as {
			fmt.Println(a.State, a.Kind, a.Target, a.Summary)
		}
		return nil
	})
	m, err := alarm.NewManager(ctx, nil, alarm.WithSinks(print), alarm.WithRenotify(4*time.Hour), alarm.WithSyncDelivery())
	if err != nil {
		panic(err)
	}
	defer m.Close()
	k := alarm.Key{Target: "orders", Check: "heap", Kind: alarm.KindNotVerified}
	m.Apply(ctx, alarm.Condition{Key: k, Active: true, Summary: "connection refused"})
	m.Apply(ctx, alarm.Condition{Key: k, Active: true, Summary: "connection refused"}) // the same problem: quiet
	m.Apply(ctx, alarm.Condition{Key: k, Active: false})
	// Output:
	// firing not_verified orders connection refused
	// resolved not_verified orders connection refused
}

// The sinks a daemon typically configures.
func ExampleNewAlertmanager() {
	am, err := alarm.NewAlertmanager("http://alertmanager:9093",
		alarm.WithGeneratorURL(func(a alarm.Alarm) string { return "https://dbscrub.example/targets/" + a.Target }))
	if err != nil {
		panic(err)
	}
	hook, err := alarm.NewWebhook("https://hooks.example/dbscrub", alarm.WithHeader("Authorization", "Bearer "+os.Getenv("HOOK_TOKEN")),
		alarm.WithAttempts(5), alarm.WithAttemptTimeout(5*time.Second))
	if err != nil {
		panic(err)
	}
	sinks := []alarm.Sink{am, hook, alarm.LogSink(slog.Default())}
	for _, s := range sinks {
		fmt.Println(s.Name())
	}
	// Output:
	// alertmanager
	// webhook
	// log
}
