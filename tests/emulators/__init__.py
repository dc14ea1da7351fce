"""Local emulators of broker and exchange APIs, served on 127.0.0.1 for the tests.

tradekit's broker and venue plugins use the real client libraries (alpaca-py, ccxt). There is
no internet in the test environment, so these emulators speak the same HTTP and websocket
protocols on loopback and let a test seed state and inject faults.
"""
