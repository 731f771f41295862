"""The console: the web pages coordinators, foundations and volunteers use, rendered on the server from the other
services' APIs with the signed-in person's own token. It holds no programme data of its own."""
