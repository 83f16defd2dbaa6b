# EDHOC identities (NAME/NAME.key, NAME/NAME.ccs and NAME/NAME.json) for the RS, alice and bob.
for name in rs alice bob; do coapsec keygen --name $name --out-dir $name --curve p-256; done

# The AS, and the RS with its EDHOC identity: it serves /.well-known/edhoc for token holders.
coapsec as --config as.json --credentials as-credentials.json --bind 127.0.0.1:5688 &
coapsec serve --bind 127.0.0.1:5683 --ace rs.json --credentials rs/rs.json &
for i in $(seq 50); do coapsec ping coap://127.0.0.1:5688 && coapsec ping coap://127.0.0.1:5683 && break; sleep 0.2; done

# Alice gets a token bound to her credential, runs EDHOC with the RS (the token in message_3)
# and reads and writes over the context EDHOC made.
coapsec get coap://127.0.0.1:5683/hello --ace-as coap://127.0.0.1:5688/token --credentials alice.json -v
coapsec put coap://127.0.0.1:5683/valve --payload 9 --ace-as coap://127.0.0.1:5688/token --credentials alice.json

# Bob may only read.
coapsec put coap://127.0.0.1:5683/valve --payload 3 --ace-as coap://127.0.0.1:5688/token --credentials bob.json
coapsec get coap://127.0.0.1:5683/valve --ace-as coap://127.0.0.1:5688/token --credentials bob.json
