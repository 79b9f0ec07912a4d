"""The local stand-ins for Google Cloud: launcher, Cloud Tasks emulator, offline model server."""
