// Package sdnotify tells a service manager how prism is doing, with the
// sd_notify(3) datagram protocol systemd uses for Type=notify units:
// READY=1 once every listener is bound, RELOADING=1 (with MONOTONIC_USEC)
// while a reload runs, STOPPING=1 when the drain starts, STATUS= for a
// human line in `systemctl status`. Without NOTIFY_SOCKET in the
// environment every call does nothing, so prism runs the same outside
// systemd.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state lines (like "READY=1") to $NOTIFY_SOCKET. It reports
// whether a message was sent; no socket is not an error.
func Notify(lines ...string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}

// Ready says the service is up.
func Ready(status string) (bool, error) { return Notify("READY=1", "STATUS="+status) }

// Reloading says a reload started; call Ready when it ended. systemd wants
// the CLOCK_MONOTONIC time of the start with it (Type=notify-reload and
// newer Type=notify units check it).
func Reloading() (bool, error) {
	return Notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping says the service is shutting down.
func Stopping(status string) (bool, error) { return Notify("STOPPING=1", "STATUS="+status) }

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / int64(time.Microsecond)
}
