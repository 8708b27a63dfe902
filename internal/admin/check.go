package admin

// CheckTLS loads admin.tls as New would (certificate and key, client CA),
// so that prism validate finds a file prism run could not use. Nil when
// the listener is off or plain.
func (c *Config) CheckTLS() error {
	if c.Listen == "" || !c.TLS.On() {
		return nil
	}
	_, err := serverTLS(c.TLS)
	return err
}
