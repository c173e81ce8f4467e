"""The transparent streaming proxy, its provider usage parsers and the Lambda entry point."""
