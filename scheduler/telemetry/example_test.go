package telemetry_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/telemetry"
)

// Spans for a one-shot gate, outside the scheduler. An application passes
// its own providers (or sets the globals).
func ExampleTelemetry_Observer() {
	rec := tracetest.NewSpanRecorder()
	tel, err := telemetry.New(telemetry.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	if err != nil {
		panic(err)
	}
	defer tel.Close()
	t := target{cks: []checks.Check{check{name: "heap", tasks: []task{{key: "orders", cost: 1, run: ok(1)}}}}}
	_, err = checks.Gate(context.Background(), t, checks.WithObserver(tel.Observer("orders")))
	fmt.Println(err)
	for _, s := range rec.Ended() {
		fmt.Println(s.Name(), s.SpanKind())
	}
	// Output:
	// <nil>
	// dbscrub.task client
	// dbscrub.check client
	// dbscrub.run client
}
