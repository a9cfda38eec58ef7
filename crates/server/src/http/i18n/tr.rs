//! The pages in Turkish, in the formal register ("siz"). Values stand where no suffix has to
//! agree with them ("{application} uygulamasında", "{who} adlı kullanıcının", a colon before an
//! address), since vowel harmony cannot be known for a name or an address.

use super::Catalogue;

pub const CATALOGUE: Catalogue = Catalogue {
    brand: "countersign",
    lang_nav_label: "Dil",

    approve_title: "Oturum açmayı onaylayın",
    approve_heading: "Bu oturum açma isteğini onaylıyor musunuz?",
    approve_lead: "{user}, {application} uygulamasında oturum açmak istiyor.",
    approve_user: "Kullanıcı",
    approve_application: "Uygulama",
    approve_client: "Kaynak adres",
    approve_asked_at: "İstek zamanı",
    approve_valid_until: "Bağlantının geçerlilik sonu",
    approve_advice: "Yalnızca {user} adlı kişinin şu anda oturum açtığını biliyorsanız onaylayın. \
                     Bu isteği beklemiyorsanız reddedin.",
    approve_button: "Onayla",
    reject_button: "Reddet",
    unknown_client: "bilinmiyor",

    link_invalid_title: "Bağlantı geçersiz",
    link_invalid_line: "Bu onay bağlantısı geçerli değil. İletideki bağlantının tamamını \
                        açtığınızdan emin olun.",
    link_invalid_again: "Onayınıza ihtiyaç duyan kişi yeniden oturum açabilir; size yeni bir \
                         ileti gönderilir.",
    unavailable_title: "Lütfen biraz sonra yeniden deneyin",
    unavailable_line: "Sunucu bu isteği şu anda sorgulayamıyor. Hiçbir karar verilmedi; lütfen \
                       bağlantıyı birazdan yeniden açın.",
    refused_title: "İstek reddedildi",
    refused_line: "Bu istek onay sayfasından gelmediği için hiçbir karar verilmedi. İletinizdeki \
                   bağlantıyı yeniden açın ve o sayfadaki düğmeleri kullanın.",
    link_expired_title: "Bağlantının süresi doldu",
    link_expired_line: "{who} adlı kullanıcının {application} uygulamasında oturum açma isteği, \
                        karar verilmeden {time} itibarıyla sona erdi.",
    link_expired_again: "Bu bağlantıyla artık karar verilemez. Oturum açmak hâlâ isteniyorsa \
                         kullanıcı yeniden oturum açabilir; size yeni bir ileti gönderilir.",
    already_approved_title: "Zaten onaylandı",
    already_rejected_title: "Zaten reddedildi",
    already_cancelled_title: "Zaten iptal edildi",
    already_approved_line: "{who} adlı kullanıcının {application} uygulamasında oturum açma \
                            isteği {time} tarihinde zaten onaylandı. Hiçbir şey değiştirilmedi.",
    already_rejected_line: "{who} adlı kullanıcının {application} uygulamasında oturum açma \
                            isteği {time} tarihinde zaten reddedildi. Hiçbir şey değiştirilmedi.",
    already_cancelled_line: "{who} adlı kullanıcının {application} uygulamasında oturum açma \
                             isteği {time} tarihinde zaten iptal edildi. Hiçbir şey \
                             değiştirilmedi.",
    decided_approved_title: "Oturum açma onaylandı",
    decided_approved_line: "{who} adlı kullanıcının {application} uygulamasında oturum açmasını \
                            onayladınız. Kullanıcı şimdi içeri alınıyor.",
    decided_rejected_title: "Oturum açma reddedildi",
    decided_rejected_line: "{who} adlı kullanıcının {application} uygulamasında oturum açmasını \
                            reddettiniz. Kullanıcı içeri alınmayacak.",
    decided_rejected_advice: "Parolasını başka birinin bildiğini düşünüyorsanız güvenlik \
                              ekibinize bildirin.",

    status_too_large_title: "İstek çok büyük",
    status_too_large_line: "İstek çok büyüktü. Hiçbir karar verilmedi.",
    status_method_title: "Bu istek türü kabul edilmiyor",
    status_method_line: "Bu sayfa bu tür bir isteği kabul etmiyor.",
    status_media_type_title: "Desteklenmeyen içerik türü",
    status_server_title: "Sunucu hatası",
    status_server_line: "Sunucu yanıt veremedi. Hiçbir karar verilmedi.",
    status_bad_request_title: "Geçersiz istek",
    status_not_found_title: "Bulunamadı",
    status_other_title: "Hata",
    status_request_line: "İstek okunamadı. Hiçbir karar verilmedi.",

    signin_title: "Oturum aç",
    signin_lead: "{application} uygulamasına devam etmek için oturum açın.",
    username_label: "Kullanıcı adı",
    password_label: "Parola",
    signin_button: "Oturum aç",
    signin_refused: "Kullanıcı adı veya parola hatalı.",
    signin_too_many: "Çok fazla deneme yapıldı. Lütfen birkaç dakika bekleyip yeniden deneyin.",
    signin_unavailable: "Şu anda oturum açılamıyor. Lütfen birazdan yeniden deneyin.",

    otp_pick_title: "Tek kullanımlık kod alın",
    otp_pick_lead: "{application} uygulaması ayrıca tek kullanımlık bir kod istiyor. Kodun \
                    nereye gönderileceğini seçin.",
    otp_pick_legend: "Kodun gönderileceği yer",
    otp_send_button: "Kodu gönder",
    otp_none: "Hesabınız için bir kod gönderme yöntemi tanımlanmamış. Lütfen yardım masanıza \
               başvurun.",
    otp_not_sent: "Kod gönderilemedi. Başka bir adres seçin veya birazdan yeniden deneyin.",

    otp_code_title: "Kodu girin",
    otp_code_lead: "{mechanism} ile şu adrese bir kod gönderdik: {address}",
    otp_code_label: "Tek kullanımlık kod",
    otp_verify_button: "Doğrula",
    otp_resend_link: "Yeni bir kod gönder",
    otp_code_refused: "Bu kod hatalı veya süresi dolmuş.",

    waiting_title: "Onay bekleniyor",
    waiting_heading: "Yöneticinizin onayı bekleniyor",
    waiting_approver_label: "Onay istenen",
    waiting_expires_label: "Bekleme sonu",
    waiting_countdown_label: "Kalan süre",
    waiting_status_pending: "Karar bekleniyor…",
    waiting_status_approved: "Onaylandı. Yönlendiriliyorsunuz…",
    waiting_status_rejected: "Yöneticiniz bu oturum açma isteğini reddetti.",
    waiting_status_expired: "Süre doldu.",
    waiting_hint: "Bu sayfayı açık tutun: yöneticiniz karar verdiğinde kendiliğinden devam eder.",
    waiting_noscript: "Bu sayfa birkaç saniyede bir kendiliğinden yenilenir.",
    cancel_button: "İptal et",

    outcome_approved_title: "Oturum açma onaylandı",
    outcome_approved_line: "{application} uygulamasında oturum açtınız.",
    outcome_rejected_title: "Oturum açma reddedildi",
    outcome_rejected_line: "Yöneticiniz bu oturum açma isteğini reddetti.",
    outcome_rejected_advice: "Bunun bir hata olduğunu düşünüyorsanız lütfen yöneticinizle \
                              görüşün.",
    outcome_expired_title: "Süre doldu",
    outcome_expired_line: "Yöneticiniz zamanında karar vermedi. Yeniden sormak için tekrar oturum \
                           açabilirsiniz.",
    outcome_cancelled_title: "Oturum açma iptal edildi",
    outcome_cancelled_line: "Bu oturum açma işlemini iptal ettiniz.",
    outcome_error_title: "Bir sorun oluştu",
    outcome_error_line: "Oturum açma tamamlanamadı. Lütfen uygulamaya dönüp yeniden deneyin.",
    outcome_used_title: "Bu oturum açma işlemi sona erdi",
    outcome_used_line: "Bu oturum açma işlemi zaten tamamlandı veya süresi doldu. Lütfen \
                        uygulamadan yeniden başlayın.",
    outcome_denied_title: "Şu anda oturum açamazsınız",
    outcome_not_allowed_line: "{application} uygulamasında bu şekilde oturum açamazsınız. \
                               Erişime ihtiyacınız varsa sistem yöneticinize başvurun.",
    outcome_unreachable_line: "Şu anda yöneticinizden onay istenemedi. Lütfen daha sonra \
                               yeniden deneyin veya sistem yöneticinize başvurun.",
    outcome_elsewhere_line: "Hesabınız için {application} uygulamasında başka bir cihazda onay \
                             bekleyen bir oturum açma isteği var. Orada tamamlayın veya iptal \
                             edin ya da süresinin dolmasını bekleyin.",
    back_link: "Uygulamaya dön",

    demo_title: "Demo uygulaması",
    demo_lead: "Demonun bu küçük uygulaması sizi OpenID Connect ile countersign üzerinden \
                oturum açtırır, aldığı kimlik belirtecini (ID token) doğrular ve sizin hakkınızda \
                söylediklerini gösterir.",
    demo_hint: "Yöneticinin onayını beklemek için dave olarak (parola dave-demo-password) oturum \
                açın: onay bağlantısı demonun terminalinde görünür; onu başka bir sekmede açıp \
                onaylayın. Hemen içeri alınmak için alice olarak (alice-demo-password) oturum \
                açın.",
    demo_signin_button: "Demo uygulamasında oturum aç",
    demo_signed_in_title: "Demo uygulamasında oturum açıldı",
    demo_signed_in_lead: "Demo uygulaması kimlik belirtecini doğruladı: sağlayıcının {kid} \
                          anahtarıyla RS256 imzasını, yayıncıyı, hedef kitleyi, geçerlilik \
                          süresini ve nonce değerini. Belirtecin içeriği:",
    demo_claim_sub: "Özne (sub)",
    demo_claim_name: "Ad (name)",
    demo_claim_username: "Kullanıcı adı (preferred_username)",
    demo_claim_email: "E-posta (email)",
    demo_claim_auth_time: "Oturum açma zamanı (auth_time)",
    demo_claim_amr: "Yöntemler (amr)",
    demo_claim_acr: "Güvence düzeyi (acr)",
    demo_claim_absent: "verilmedi",
    demo_again_link: "Yeniden oturum aç",
    demo_failed_title: "Oturum açılmadı",
    demo_no_session_line: "Bu tarayıcının demo uygulamasıyla süren bir oturum açma işlemi yok: \
                           süresi doldu, başka bir sekme yenisini başlattı ya da demo yeniden \
                           başlatıldı.",
    demo_state_line: "Bu yanıt, bu tarayıcının başlattığı oturum açma işlemine ait değil (state \
                      değeri eşleşmiyor); demo uygulaması bu yüzden reddetti.",
    demo_issuer_line: "Bu yanıt countersign dışında bir yayıncı adı taşıyor; demo uygulaması bu \
                       yüzden reddetti.",
    demo_provider_line: "countersign sizi oturum açtırmadan geri gönderdi: {error}.",
    demo_denied_line: "Oturum açma reddedildi, iptal edildi ya da süresi doldu.",
    demo_no_code_line: "Yanıtta ne kod ne de hata var.",
    demo_token_line: "countersign kodu kabul etmedi: {error}.",
    demo_unreachable_line: "Demo uygulaması countersign'ın {endpoint} adresinden yanıt alamadı.",
    demo_id_token_line: "Kimlik belirteci doğrulamadan geçmedi ({why}); demo uygulaması ona \
                         güvenmiyor.",
};
