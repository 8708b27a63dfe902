// Package pphdr is prism's one place for the PROXY protocol (HAProxy's
// proxy-protocol.txt, v1 and v2): the headers trusted front proxies put in
// front of a client's stream or datagram, which prism reads, and the
// headers prism puts in front of what it sends to an origin.
//
//   - Trust: Trusted is the rule for whose headers are read at all. A peer
//     outside the app's trusted prefixes gets no header parsing; its bytes
//     are the client's own.
//   - Inbound over TCP: BufferV1 and ReadTCP read a v1 or v2 header from a
//     connection's reader, with go-proxyproto's parser and a check it does
//     not make (a v2 TLV that runs past the header's end is malformed);
//     TCPSource is the client the header names (of a TCP or a UDP family,
//     as ParseUDP reads them).
//   - Inbound over UDP: ParseUDP reads the header at the start of a
//     datagram without allocating (v2; v1 too, which nginx sends even over
//     UDP) and returns where the payload starts. It refuses what ReadTCP
//     refuses, so a header means the same on both transports.
//   - Outbound: TCPHeader (v1 or v2, with TLVs) and UDPHeader (v2, DGRAM)
//     format the header for an origin. When the client and the proxy
//     address are of different families both are written as IPv6 (the v4
//     one as IPv4-mapped), so the header stays valid: one rule, in
//     sameFamily, for both transports.
//   - TLVs: TLSTLVs describes the client's TLS for the origin
//     (PP2_TYPE_AUTHORITY and PP2_TYPE_SSL, built with go-proxyproto's
//     tlvparse).
//
// The package is named pphdr, not proxyproto, so that it and
// github.com/pires/go-proxyproto (package proxyproto), which it builds on,
// read apart at every call site and can be imported side by side without
// renaming either. Cloudflare's Simple Proxy Protocol is a different wire
// format and lives in internal/spp. pphdr knows nothing of sockets' owners,
// events or config: it takes and returns plain values.
package pphdr
