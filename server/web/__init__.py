"""The viewer's pages and static files (viewer/), served without ever leaving that folder.
May import: server.access, server.audit."""
