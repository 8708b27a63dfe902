package logs

import (
	"slices"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/render"
)

// TestMissingNamesCloudConnexaLogKeys: what a source cannot provide for a
// cloudconnexa record is named by the log object's keys, and only when the
// selection writes the log field; what convert fills with a stand-in (a
// hashed session id) is listed apart, with the stand-in.
func TestMissingNamesCloudConnexaLogKeys(t *testing.T) {
	got := Missing(render.Spectrum, render.CloudConnexa, nil)
	for _, want := range []string{"log.gatewayId (the node id)", "log.sessionDisconnectReasonDescription (the error detail)"} {
		if !slices.Contains(got, want) {
			t.Errorf("Missing(spectrum_events, cloudconnexa) = %q, want %q in it", got, want)
		}
	}
	// Spectrum has no session id; convert hashes one, so it is not unknown.
	if slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "log.clientSessionId") }) {
		t.Errorf("Missing(spectrum_events, cloudconnexa) = %q lists the derived session id", got)
	}
	approx := Approximated(render.Spectrum, render.CloudConnexa, nil)
	if !slices.Equal(approx, []string{"log.clientSessionId (a session id: hashed from start time, colo, app and client address)",
		"traceId (a trace id: a fresh random id)"}) {
		t.Errorf("Approximated(spectrum_events, cloudconnexa) = %q", approx)
	}
	if a := Approximated(render.EdgeOne, render.Spectrum, []string{"ConnectTimestamp", "ClientPort"}); !slices.Equal(a,
		[]string{"ConnectTimestamp (the time both legs were up: its ConnectTimeStamp, the accept)"}) {
		t.Errorf("Approximated(edgeone_l4, spectrum_events) = %q", a)
	}
	if got := Missing(render.EdgeOne, render.CloudConnexa, nil); !slices.Contains(got, "log.destinationEntityIp/destinationPort (the origin address)") {
		t.Errorf("Missing(edgeone_l4, cloudconnexa) = %q, want the origin's log keys", got)
	}
	if got := Missing(render.EdgeOne, render.CloudConnexa, []string{"traceId", "eventName", "publicIp"}); len(got) != 0 {
		t.Errorf("Missing without the log field = %q, want nothing", got)
	}
}

// TestPeriodicNote: the note on a source without periodic records says
// what the target gets: OCSF the connect and final records (it said the
// final record only, and OCSF writes the connect too), EdgeOne the final
// record only.
func TestPeriodicNote(t *testing.T) {
	for to, want := range map[string]string{
		render.OCSF:    "ocsf gets each session's connect and final records only, no in-flight ones",
		render.EdgeOne: "edgeone_l4 gets each session's final record only",
	} {
		for _, from := range []string{render.Spectrum, render.CloudConnexa} {
			if n := missingNote(from, to, nil); !strings.Contains(n, from+" has no periodic records; "+want+"\n") && !strings.HasSuffix(n, want) {
				t.Errorf("%s -> %s: %s\nwant %q", from, to, n, want)
			}
		}
	}
}
