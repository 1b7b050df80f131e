from tests.twilio_support import signed_post, webhook_example
def test_smoke(tw_client, db_session, demo_directory, queue):
    p = webhook_example("sms_inbound", From="+13145550188")
    r = signed_post(tw_client, "/twilio/sms", p)
    print(r.status_code, r.get_data(as_text=True))
    p2 = webhook_example("sms_inbound", From="+13145550188", MessageSid="SM"+"2"*32, Body="roosvelt")
    r = signed_post(tw_client, "/twilio/sms", p2)
    print(r.status_code, r.get_data(as_text=True))
    p3 = webhook_example("sms_inbound", From="+13145550188", MessageSid="SM"+"3"*32, Body="4")
    r = signed_post(tw_client, "/twilio/sms", p3)
    print(r.status_code, r.get_data(as_text=True))
    r = signed_post(tw_client, "/twilio/sms", p3)
    print(r.status_code, r.get_data(as_text=True))
    print(queue.sent)
    assert 0
