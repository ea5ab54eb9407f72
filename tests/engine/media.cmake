# Tests of the media component (images, audio, text, embeddings).
tblog_add_test(png_test SOURCES engine/png_test.cc LIBS tblog_engine_media)
tblog_add_test(image_summary_test SOURCES engine/image_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(audio_summary_test SOURCES engine/audio_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(text_summary_test SOURCES engine/text_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(embedding_test SOURCES engine/embedding_test.cc LIBS tblog_engine_media)
