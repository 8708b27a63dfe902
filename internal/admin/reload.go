package admin

import (
	"encoding/json"
	"net/http"
)

// reload is POST /api/v1/reload: re-read the config file and apply it, as
// SIGHUP does (Parts.Reload). 200 with what changed; 422 with the reason
// and what applied: every file:line: key: reason of a file that does not
// validate (the running config stays), or the apps that could not start
// with their new settings (they serve with their old ones); 404 when the
// daemon offers no reload.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.p.Reload == nil {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "reload is not available"})
		return
	}
	res, err := s.p.Reload()
	if err != nil {
		s.log.Warn("config reload through the admin API failed", "from", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "result": res})
		return
	}
	s.log.Info("config reloaded through the admin API", "from", r.RemoteAddr)
	writeJSON(w, res)
}
