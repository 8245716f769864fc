"""mitoscale.segment"""
