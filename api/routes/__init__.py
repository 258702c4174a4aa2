"""Thin routes: parse the request, call crud/services, shape the response."""
