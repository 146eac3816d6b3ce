/* Wire constants of the pyro host <-> guest agent protocol.
 *
 * protocol/spec.json is the single source of these values; a test on the host side
 * parses this header and checks the macros against it. Keep one `#define PYRO_NAME VALUE`
 * per line and nothing else named PYRO_ here (agent-internal constants live in the
 * headers of the capability that uses them). */
#ifndef AGENT_PROTOCOL_H
#define AGENT_PROTOCOL_H

#define PYRO_PROTOCOL_VERSION 1

#define PYRO_FRAME_HEADER_SIZE 12
#define PYRO_MAX_PAYLOAD_BYTES 1048576
#define PYRO_MAX_CONTROL_BYTES 65536
#define PYRO_MAX_ARGV_ENTRIES 4096
#define PYRO_MAX_ENV_ENTRIES 1024

#define PYRO_FRAME_CONTROL 1
#define PYRO_FRAME_STDOUT 2
#define PYRO_FRAME_STDERR 3
#define PYRO_FRAME_STDIN 4
#define PYRO_FRAME_STDIN_EOF 5

#define PYRO_VSOCK_PORT 5005
#define PYRO_VIRTIO_SERIAL_NAME "pyro.agent"

#endif
