"""mitoscale.evaluate"""
